//! Fused populations — horizontally fused training (HFTA; Wang et al., MLSys 2021): K
//! students of one architecture trained as one model ([`StudentPopulation`]) on the same
//! batches in the same order, each member keeping everything its solo fit keeps.
//!
//! Each member is a solo fit's state (its model, Adam, callbacks, checkpoints, history and
//! learning rate): every epoch the population is stacked from the members still training,
//! takes one fused step per batch — one forward pass for all, each member's own loss (its
//! objective: cross-entropy, or its distillation loss with its temperature and weights), one
//! backward pass, each member's own Adam step at its own learning rate
//! ([`kd_sys::adam_step_members`]) — and is unstacked back into the members' models and
//! optimizers; validation runs fused; then each member's callbacks decide for it alone (early
//! stopping, ReduceLROnPlateau, best weights) and each writes its own checkpoint, which is a
//! solo fit's checkpoint: a member resumes fused or alone alike.
//!
//! A member that stops (early stopping, a pause, a non-finite step under `on_nonfinite =
//! "stop"`) leaves the population at the end of its epoch: the next epoch's population is
//! stacked without it, so it stops costing compute. (Within the epoch it is masked: its
//! slices are not stepped.) The teacher's logits of a batch are gathered or computed once
//! for all members that share the teacher.
//!
//! Steps are eager (no CUDA graphs: on a GPU a member's values are its solo fit's, its
//! steps not captured), in one process (no data parallelism), in float32 or bfloat16
//! (float16 needs a loss scaler per member); a member's `seconds` is the population's wall
//! time. Each member restores its checkpoint's random-generator state in turn, so the
//! last member's is the generators' (students draw nothing while they train: no dropout;
//! augmentation draws from its own seeded stream).

mod adam;
mod eval;
mod step;
mod teacher;

use std::time::Instant;

use kd_models::population::Layout;
use kd_models::{Model, StudentConfig};

use crate::batches::BatchSource;
use crate::checkpoint::Checkpoints;
use crate::config::TrainConfig;
use crate::epoch::{check_trained, epoch_metrics, record_epoch};
use crate::error::{Result, TrainError};
use crate::objective::Objective;
use crate::progress::{NoProgress, Progress};
use crate::state::FitOutcome;
use crate::training::{Training, When};

/// One member of a population: what a solo fit of it takes.
#[derive(Debug)]
pub struct Member<'a> {
    /// Its model (its initial weights, as its solo fit would draw them; its weights after
    /// the fit).
    pub model: &'a Model,
    /// What it minimizes: cross-entropy, or a logit distillation loss (no FitNets hint, no
    /// mixup: those need a batch of their own).
    pub objective: Objective<'a>,
    /// Its settings; every member's `epochs` is the same.
    pub config: &'a TrainConfig,
    /// Its name in log lines and checkpoints.
    pub phase: String,
    /// Where it checkpoints (`None`: nowhere).
    pub checkpoints: Option<&'a Checkpoints>,
}

/// What watches a population's fit.
#[derive(Default)]
pub struct PopulationHooks<'a> {
    /// Told about every epoch's batches (as `population`) and every member's epoch end.
    pub progress: Option<&'a mut dyn Progress>,
    /// Ends every member's fit after this epoch, as [`crate::FitHooks::pause_after`] does.
    pub pause_after: Option<usize>,
    /// How the members compute: fused ([`Layout::Grouped`], the default) or each as its
    /// solo fit, bit for bit ([`Layout::Members`]).
    pub layout: Layout,
}

impl std::fmt::Debug for PopulationHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopulationHooks")
            .field("progress", &self.progress.is_some())
            .field("pause_after", &self.pause_after)
            .field("layout", &self.layout)
            .finish()
    }
}

/// A member's fit in progress, or its result.
struct Slot<'a> {
    model: &'a Model,
    objective: Objective<'a>,
    fit: Training<'a>,
    done: Option<Result<FitOutcome>>,
}

/// Trains `members` (students of `student`) as one fused population on `train`, validating
/// on `val` after each epoch: one result per member, in order. The outer error is the
/// population's (members that cannot be fused, batches that cannot be read).
pub fn fit_population<'a>(
    student: &StudentConfig,
    members: &'a [Member<'a>],
    train: &dyn BatchSource,
    val: &dyn BatchSource,
    hooks: PopulationHooks,
) -> Result<Vec<Result<FitOutcome>>> {
    let _span = tracing::debug_span!("fit_population", members = members.len()).entered();
    let epochs = check_members(members, train)?;
    let mut no_progress = NoProgress;
    let progress = hooks.progress.unwrap_or(&mut no_progress);
    let mut slots = start_members(members, train.num_batches(), hooks.pause_after)?;
    let first_epoch = resumed_epoch(&slots)?;
    let start = Instant::now();
    let earlier: Vec<f64> = slots.iter().map(|s| s.fit.state.seconds).collect();
    for epoch in first_epoch + 1..=epochs {
        let active: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].done.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        let started = Instant::now();
        let phase = format!("population of {}", active.len());
        progress.epoch_start(&phase, epoch, epochs, train.num_batches());
        let population = step::stack(student, &slots, &active, hooks.layout)?;
        let pass = step::train_epoch(&population, &mut slots, &active, train, epoch, progress)?;
        let validations = eval::validate(&population, &slots, &active, val)?;
        step::unstack(&population, &slots, &active)?;
        for (j, &i) in active.iter().enumerate() {
            let slot = &mut slots[i];
            if slot.done.is_some() {
                continue; // failed in the pass
            }
            let seconds = earlier[i] + start.elapsed().as_secs_f64();
            let train_part = (pass.sums[j].clone(), pass.skipped[j], pass.seconds);
            let ended = end_epoch(slot, train_part, validations[j], (epoch, started), progress);
            slot.done = match ended {
                Ok(EpochEnd::Continue) => save_or_pause(&mut slot.fit, epoch, seconds),
                Ok(EpochEnd::Stopped) => Some(finish(&mut slot.fit, seconds)),
                Err(e) => Some(Err(e)),
            };
        }
    }
    Ok(slots
        .into_iter()
        .zip(earlier)
        .map(|(mut slot, earlier)| match slot.done.take() {
            Some(result) => result,
            None => finish(&mut slot.fit, earlier + start.elapsed().as_secs_f64()),
        })
        .collect())
}

/// Refuses members that cannot train as one population; their common number of epochs.
fn check_members(members: &[Member], train: &dyn BatchSource) -> Result<usize> {
    let first = members.first().ok_or_else(|| TrainError::InvalidConfig {
        key: "population".into(),
        expected: "at least one member".into(),
        got: "none".into(),
    })?;
    for m in members {
        m.config.validate(&m.phase)?;
        m.objective.check_labels(train, &m.phase)?;
        let refuse = |expected: &str, got: String| TrainError::InvalidConfig {
            key: format!("{}: population", m.phase),
            expected: expected.into(),
            got,
        };
        if let Some(why) = m.objective.unfusable() {
            return Err(refuse("a member that learns from logits", why.into()));
        }
        if m.config.epochs != first.config.epochs {
            let got = format!(
                "{} epochs, the first member {}",
                m.config.epochs, first.config.epochs
            );
            return Err(refuse("every member's epochs the same", got));
        }
        if m.config.cuda_graphs == Some(true) {
            return Err(refuse("eager steps", "cuda_graphs = true".into()));
        }
        if m.model.precision() == kd_models::Precision::F16 {
            let got = "float16 (each member's loss scaler of its own)".into();
            return Err(refuse("float32 or bfloat16 members", got));
        }
    }
    Ok(first.config.epochs)
}

/// Every member's fit, started fresh or from its last checkpoint; members already complete
/// (or past the pause) are done.
fn start_members<'a>(
    members: &'a [Member<'a>],
    steps: usize,
    pause_after: Option<usize>,
) -> Result<Vec<Slot<'a>>> {
    members
        .iter()
        .map(|m| {
            let phase_config = (m.config, m.phase.as_str());
            let mut fit = Training::start(
                m.model,
                phase_config,
                m.checkpoints,
                steps,
                Vec::new(),
                None,
            )?
            .pausing_after(pause_after)?;
            let done = fit.announce_resume().map(Ok);
            Ok(Slot {
                model: m.model,
                objective: m.objective,
                fit,
                done,
            })
        })
        .collect()
}

/// The epoch every member still training resumes after (they must agree: one data stream).
fn resumed_epoch(slots: &[Slot]) -> Result<usize> {
    let mut epochs = slots
        .iter()
        .filter(|s| s.done.is_none())
        .map(|s| s.fit.state.epoch);
    let first = epochs.next().unwrap_or(0);
    match epochs.find(|&e| e != first) {
        None => Ok(first),
        Some(other) => Err(TrainError::InvalidConfig {
            key: "population".into(),
            expected: "members that resume after the same epoch (they share the batches)".into(),
            got: format!("epochs {first} and {other}"),
        }),
    }
}

/// What a member's epoch end decided.
enum EpochEnd {
    Continue,
    Stopped,
}

/// A member's epoch end, as a solo fit's: its metrics from its training sums and
/// validation, recorded and logged; its callbacks' decisions carried out.
fn end_epoch(
    slot: &mut Slot,
    (sums, skipped, train_seconds): (crate::metrics::EpochSums, usize, f64),
    validation: crate::evaluate::Evaluation,
    (epoch, started): (usize, Instant),
    progress: &mut dyn Progress,
) -> Result<EpochEnd> {
    let t = &mut slot.fit;
    check_trained(&sums, t.phase, epoch)?;
    let m = epoch_metrics(t, sums, validation, epoch, started, train_seconds)?;
    t.config.check_monitors(t.phase, &m)?;
    progress.epoch_end(t.phase, &m);
    record_epoch(t, m, skipped);
    let actions = t.callbacks.on_epoch_end(&t.state.history, t.state.lr);
    let stop = t.apply(actions, When::EpochEnd(epoch))?;
    t.state.epoch = epoch;
    if stop {
        t.state.stopped_epoch = Some(epoch);
        return Ok(EpochEnd::Stopped);
    }
    Ok(EpochEnd::Continue)
}

/// After a member's epoch that did not stop it: its last checkpoint (not after the last
/// epoch, whose state is the final one), and its outcome if it pauses here.
fn save_or_pause(t: &mut Training, epoch: usize, seconds: f64) -> Option<Result<FitOutcome>> {
    if epoch >= t.config.epochs {
        return None; // finished with the others, below
    }
    if let Err(e) = t.save_last(seconds) {
        return Some(Err(e));
    }
    t.pauses_after(epoch).then(|| Ok(t.state.outcome()))
}

/// A member's end of training: its callbacks' last word, its final checkpoint.
fn finish(t: &mut Training, seconds: f64) -> Result<FitOutcome> {
    let actions = t.callbacks.on_train_end();
    t.apply(actions, When::TrainEnd)?;
    t.state.complete = true;
    t.save_last(seconds)?;
    Ok(t.state.outcome())
}

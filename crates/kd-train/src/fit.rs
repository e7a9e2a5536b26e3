//! The training loop, Keras' `fit`: Adam (Kingma & Ba 2015) over seeded mini-batches,
//! validation after every epoch, then the callbacks decide (stop, change the learning rate,
//! keep, save or restore the best weights), in the order Keras runs them. With
//! [`Checkpoints`], every epoch ends with a checkpoint and an interrupted fit resumes from
//! the last one.
//!
//! [`fit_with`] is the whole loop; each concern behind it lives in a file of its own:
//! `training.rs` (the fit's state: start or resume, actions, checkpoints), `epoch.rs` (the
//! batches of an epoch and its metrics), `stepper.rs` (the one optimizer step), `replicas.rs` (one
//! process or data parallelism: every collective) and [`crate::callback`] (the callback
//! list).

use std::time::Instant;

use kd_core::Split;
use kd_models::Network;

use crate::batches::BatchSource;
use crate::callback::Callback;
use crate::checkpoint::Checkpoints;
use crate::config::TrainConfig;
use crate::distributed::DataParallel;
use crate::epoch::{check_trained, epoch_metrics, record_epoch, train_epoch};
use crate::error::Result;
use crate::evaluate::evaluate;
use crate::graphed;
use crate::metric::{self, Metric};
use crate::objective::Objective;
use crate::progress::{NoProgress, Progress};
use crate::replicas::Replicas;
use crate::state::FitOutcome;
use crate::training::{Training, When};

/// What watches a fit besides its caller: progress display and checkpoints.
#[derive(Default)]
pub struct FitHooks<'a> {
    /// Told about every batch and epoch (`None`: nobody).
    pub progress: Option<&'a mut dyn Progress>,
    /// Where to checkpoint, and whether to resume (`None`: no checkpoints).
    pub checkpoints: Option<&'a Checkpoints>,
    /// Data parallelism over a process group (`None`: this process alone).
    pub parallel: Option<DataParallel<'a>>,
    /// The caller's own callbacks, run after the built-in ones (best checkpoint, early
    /// stopping, ReduceLROnPlateau) in this order; their states go into checkpoints under
    /// their names, which must differ from the built-ins' and each other's.
    pub callbacks: Vec<Box<dyn Callback>>,
    /// The caller's validation metrics, recorded each epoch under their names (which any
    /// monitor may name).
    pub metrics: Vec<Box<dyn Metric + 'a>>,
    /// Ends the fit after this epoch as an interruption would (needs checkpoints): its last
    /// checkpoint written, no end-of-training callbacks, the outcome not
    /// [`complete`](FitOutcome::complete); a later fit of the same checkpoints resumes after
    /// it, so a fit paused and resumed equals one left alone (successive halving's rungs).
    pub pause_after: Option<usize>,
}

impl std::fmt::Debug for FitHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitHooks")
            .field("progress", &self.progress.is_some())
            .field("checkpoints", &self.checkpoints)
            .field(
                "parallel",
                &self.parallel.map(|p| (p.rank(), p.world_size())),
            )
            .field("callbacks", &self.callbacks)
            .field(
                "metrics",
                &self.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field("pause_after", &self.pause_after)
            .finish()
    }
}

/// Trains `model` on `train`, validating on `val` after each epoch; `phase` names the run in
/// log lines (`teacher`, `distilled`, ...).
pub fn fit(
    model: &dyn Network,
    train: &dyn BatchSource,
    val: &dyn BatchSource,
    objective: &Objective,
    config: &TrainConfig,
    phase: &str,
) -> Result<FitOutcome> {
    let hooks = FitHooks::default();
    fit_with(model, train, val, objective, config, phase, hooks)
}

/// [`fit`], reporting its progress and checkpointing through `hooks`. A resumed fit whose
/// checkpoint says it is complete only loads its final weights.
pub fn fit_with(
    model: &dyn Network,
    train: &dyn BatchSource,
    val: &dyn BatchSource,
    objective: &Objective,
    config: &TrainConfig,
    phase: &str,
    hooks: FitHooks,
) -> Result<FitOutcome> {
    // A debug-level span: shown with `-v`, silent in the default epoch lines.
    let _span = tracing::debug_span!("fit", phase).entered();
    config.validate(phase)?;
    objective.check_labels(train, phase)?;
    metric::check_names(&hooks.metrics, phase)?;
    let metrics = hooks.metrics;
    let replicas = Replicas::new(hooks.parallel);
    replicas.check(config, model.precision(), phase)?;
    let mut no_progress = NoProgress;
    let progress = hooks.progress.unwrap_or(&mut no_progress);
    let start = Instant::now();
    let graphs = graphed::resolve(config, model, objective, hooks.parallel.is_some(), phase)?;
    let steps = train.num_batches();
    let (checkpoints, callbacks) = (hooks.checkpoints, hooks.callbacks);
    let mut t = Training::start(
        model,
        (config, phase),
        checkpoints,
        steps,
        callbacks,
        graphs,
    )?
    .pausing_after(hooks.pause_after)?;
    replicas.agree_on_start(t.resume_point(), t.state.lr, phase)?;
    if let Some(done) = t.announce_resume() {
        return Ok(done);
    }
    replicas.broadcast_weights(model)?;
    // Training time of the processes before this one (a resumed fit) and of this one.
    let earlier_seconds = t.state.seconds;
    let seconds = || earlier_seconds + start.elapsed().as_secs_f64();

    for epoch in t.state.epoch + 1..=config.epochs {
        let started = Instant::now();
        objective.begin_epoch(epoch);
        progress.epoch_start(phase, epoch, config.epochs, train.num_batches());
        let pass = train_epoch(&mut t, train, objective, replicas, progress, epoch)?;
        let sums = replicas.sum_epoch(pass.sums)?;
        check_trained(&sums, phase, epoch)?;
        let validation = evaluate(model, val, objective, Split::Validation)?;
        let validation = replicas.agree_on_validation(validation)?;
        let mut m = epoch_metrics(&t, sums, validation, epoch, started, pass.seconds)?;
        m.metrics = metric::evaluate_metrics(model, val, &metrics)?;
        config.check_monitors(phase, &m)?;
        progress.epoch_end(phase, &m);
        record_epoch(&mut t, m, pass.skipped);

        let actions = t.callbacks.on_epoch_end(&t.state.history, t.state.lr);
        let stop = t.apply(actions, When::EpochEnd(epoch))?;
        let (stop, lr) = replicas.agree_on_decisions(stop, t.state.lr, phase)?;
        t.set_lr(lr);
        t.state.epoch = epoch;
        if stop {
            t.state.stopped_epoch = Some(epoch);
            break;
        }
        // The last epoch's state is the final checkpoint, written below.
        if epoch < config.epochs {
            t.save_last(seconds())?;
            if t.pauses_after(epoch) {
                return Ok(t.state.outcome());
            }
        }
    }
    let actions = t.callbacks.on_train_end();
    t.apply(actions, When::TrainEnd)?;
    // Batch-norm statistics are per rank: every rank leaves with rank 0's model (the one
    // saved), so whatever runs it next (a teacher's logits) runs the same model.
    replicas.broadcast_weights(model)?;
    t.finish(seconds())
}

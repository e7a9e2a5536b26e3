//! A population's training epoch: stacked from its members, one fused step per batch — one
//! forward pass, each member's loss against the batch (and its teacher's logits), one
//! backward pass of their sum (member k's slice of the gradient is its own loss's), a
//! non-finite check per member, each member's Adam step — then unstacked.

use std::time::Instant;

use kd_core::{LossParts, Split};
use kd_models::population::{Layout, StudentPopulation};
use kd_models::{Model, StudentConfig};
use kd_sys::MemberStep;
use tch::{Kind, Tensor};

use super::adam::PopulationAdam;
use super::{teacher, Slot};
use crate::batches::BatchSource;
use crate::epoch::last_good;
use crate::error::{Result, TrainError};
use crate::metrics::{DeviceSums, EpochSums};
use crate::nonfinite::OnNonFinite;
use crate::optimizer::Adam;
use crate::progress::Progress;
use crate::schedule::LrSchedule;

/// What an epoch's fused pass gives, per member (in `active` order).
pub(super) struct FusedPass {
    pub sums: Vec<EpochSums>,
    pub skipped: Vec<usize>,
    pub seconds: f64,
}

/// The population of the `active` members' current weights, computing in `layout`.
pub(super) fn stack(
    student: &StudentConfig,
    slots: &[Slot],
    active: &[usize],
    layout: Layout,
) -> Result<StudentPopulation> {
    let models: Vec<&Model> = active.iter().map(|&i| slots[i].model).collect();
    StudentPopulation::of_models(student, &models, layout).map_err(|e| TrainError::InvalidConfig {
        key: "population".into(),
        expected: "members that stack into one model".into(),
        got: e.to_string(),
    })
}

/// Writes each active member's weights back into its own model.
pub(super) fn unstack(
    population: &StudentPopulation,
    slots: &[Slot],
    active: &[usize],
) -> Result<()> {
    for (j, &i) in active.iter().enumerate() {
        population
            .write_member(j, slots[i].model.var_store())
            .map_err(|e| TrainError::InvalidConfig {
                key: "population".into(),
                expected: "members of the population's shape".into(),
                got: e.to_string(),
            })?;
    }
    Ok(())
}

/// The active members' optimizers, in order.
fn optimizers<'s>(slots: &'s mut [Slot], active: &[usize]) -> Vec<&'s mut Adam> {
    slots
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| active.contains(i))
        .map(|(_, s)| s.fit.stepper.optimizer_mut())
        .collect()
}

/// Trains `population` (the `active` members) on every batch of epoch `epoch` of `train`; a
/// member whose step is not finite is skipped or fails, as its config says.
pub(super) fn train_epoch(
    population: &StudentPopulation,
    slots: &mut [Slot],
    active: &[usize],
    train: &dyn BatchSource,
    epoch: usize,
    progress: &mut dyn Progress,
) -> Result<FusedPass> {
    let start = Instant::now();
    let mut adam = PopulationAdam::gather(population, &mut optimizers(slots, active))?;
    for &i in active {
        slots[i].objective.begin_epoch(epoch);
    }
    let leaders = teacher::leaders(slots, active);
    let mut sums: Vec<DeviceSums> = active.iter().map(|_| DeviceSums::default()).collect();
    let mut skipped = vec![0usize; active.len()];
    let mut done = 0;
    train.for_each_batch(epoch, &mut |batch| {
        done += 1;
        let mut steps = next_steps(slots, active);
        let logits = population.forward_t(&batch.images);
        let teachers = teacher::logits(slots, active, &leaders, &batch, Split::Train);
        let outs: Vec<LossParts> = active
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let teacher = teachers[leaders[j]].as_ref();
                let member = logits.get(j as i64);
                slots[i].objective.loss_of(&member, teacher, &batch.labels)
            })
            .collect();
        let totals = Tensor::stack(&outs.iter().map(|o| &o.total).collect::<Vec<_>>(), 0);
        adam.zero_grad();
        totals.sum(Kind::Float).backward();
        let finite = finite_members(&totals, adam.params(), active.len());
        for (j, &i) in active.iter().enumerate() {
            if steps[j].active && !finite[j] {
                steps[j].active = false;
                let what = nonfinite_what(&totals, &adam, j, active.len());
                skip_or_fail(&mut slots[i], what, (epoch, done), &mut skipped[j]);
            }
        }
        adam.step(&steps)?;
        for j in (0..steps.len()).filter(|&j| steps[j].active) {
            sums[j].add(&logits.get(j as i64), &batch.labels, &outs[j]);
        }
        progress.batch(done, &|| {
            let r = sums[0].read();
            (r.loss, r.accuracy())
        });
        Ok(())
    })?;
    adam.scatter(&mut optimizers(slots, active));
    Ok(FusedPass {
        sums: sums.iter().map(DeviceSums::read).collect(),
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Each active member's next step, as its solo fit would take it: its step counted, its
/// learning rate set by its schedule. Members that failed this epoch sit it out.
fn next_steps(slots: &mut [Slot], active: &[usize]) -> Vec<MemberStep> {
    active
        .iter()
        .map(|&i| {
            let slot = &mut slots[i];
            let running = slot.done.is_none();
            let t = &mut slot.fit;
            if running {
                if t.config.lr_schedule != LrSchedule::Constant {
                    let factor = t.config.lr_schedule.factor(t.state.step, t.total_steps());
                    t.stepper.set_lr(t.state.lr * factor);
                }
                t.state.step += 1;
            }
            let adam = t.stepper.optimizer();
            MemberStep {
                lr: adam.lr(),
                weight_decay: adam.config().weight_decay,
                active: running,
            }
        })
        .collect()
}

/// Whether each of `k` members' loss (`totals[k]`) and gradients (its slices) are finite:
/// one host synchronisation.
fn finite_members(totals: &Tensor, params: &[Tensor], k: usize) -> Vec<bool> {
    tch::no_grad(|| {
        let mut ok = totals.isfinite();
        for g in params.iter().map(Tensor::grad).filter(Tensor::defined) {
            let member_ok = g.reshape([k as i64, -1]).isfinite().all_dim(1, false);
            ok = ok.logical_and(&member_ok);
        }
        Vec::<bool>::try_from(&ok).expect("one flag per member")
    })
}

/// What was not finite in member `j`'s step (of `k` members), in [`crate::nonfinite`]'s
/// words: its loss, or the gradient of its first parameter that is not finite.
fn nonfinite_what(totals: &Tensor, adam: &PopulationAdam, j: usize, k: usize) -> String {
    let loss = totals.double_value(&[j as i64]);
    if !loss.is_finite() {
        return format!("loss ({loss})");
    }
    let finite = |g: &Tensor| {
        let mine = g.chunk(k as i64, 0).swap_remove(j);
        mine.isfinite().all().int64_value(&[]) != 0
    };
    adam.names()
        .iter()
        .zip(adam.params())
        .find(|(_, p)| p.grad().defined() && !finite(&p.grad()))
        .map_or_else(
            || "gradient".into(),
            |(name, _)| format!("gradient of {name}"),
        )
}

/// A member's non-finite step: skipped and counted, or the end of its fit, as its
/// `on_nonfinite` says.
fn skip_or_fail(
    slot: &mut Slot,
    what: String,
    (epoch, batch): (usize, usize),
    skipped: &mut usize,
) {
    let t = &slot.fit;
    if t.config.on_nonfinite == OnNonFinite::SkipBatch {
        tracing::warn!(
            "{}: non-finite {what} at step {} (epoch {epoch}, batch {batch}); batch skipped",
            t.phase,
            t.state.step
        );
        *skipped += 1;
        return;
    }
    slot.done = Some(Err(TrainError::NonFinite {
        phase: t.phase.into(),
        what,
        step: t.state.step,
        epoch,
        batch,
        checkpoint: last_good(t),
    }));
}

//! One epoch of a fit: every batch through the step with the non-finite policy applied,
//! then the epoch's metrics — checked finite, logged, and added to the history.

use std::time::Instant;

use crate::batches::BatchSource;
use crate::error::{Result, TrainError};
use crate::evaluate::Evaluation;
use crate::metrics::{DeviceSums, EpochMetrics, EpochSums};
use crate::nonfinite::OnNonFinite;
use crate::objective::Objective;
use crate::progress::Progress;
use crate::replicas::Replicas;
use crate::schedule::LrSchedule;
use crate::stepper::Stepped;
use crate::training::Training;

/// What the training pass of an epoch gives.
pub(crate) struct EpochPass {
    /// This rank's sums (read from the device once, at the end).
    pub sums: EpochSums,
    /// Batches skipped for a non-finite loss or gradient.
    pub skipped: usize,
    /// Seconds the pass took.
    pub seconds: f64,
}

/// Trains `t`'s model on every batch of epoch `epoch` of `train`.
pub(crate) fn train_epoch(
    t: &mut Training,
    train: &dyn BatchSource,
    objective: &Objective,
    replicas: Replicas,
    progress: &mut dyn Progress,
    epoch: usize,
) -> Result<EpochPass> {
    let start = Instant::now();
    let (config, model) = (t.config, t.model);
    let total_steps = t.total_steps();
    let mut skipped = 0usize;
    let mut sums = DeviceSums::default();
    let mut done = 0;
    train.for_each_batch(epoch, &mut |batch| {
        done += 1;
        if config.lr_schedule != LrSchedule::Constant {
            let factor = config.lr_schedule.factor(t.state.step, total_steps);
            t.stepper.set_lr(t.state.lr * factor);
        }
        t.state.step += 1;
        let step = t
            .stepper
            .step_replicated(model, objective, &batch, replicas)?;
        let taken = apply_nonfinite_policy(t, step.stepped, (epoch, done), &mut skipped)?;
        // A skipped step is not part of the epoch's metrics (its loss may be infinite);
        // PyTorch's GradScaler skips it the same way.
        if let (true, Some((logits, out))) = (taken, &step.output) {
            sums.add(logits, &step.labels, out);
        }
        progress.batch(done, &|| {
            let r = sums.read();
            (r.loss, r.accuracy())
        });
        Ok(())
    })?;
    check_graphed_steps(t, epoch, train.num_batches())?;
    // The epoch's one host synchronisation: the sums are read here, not per step.
    Ok(EpochPass {
        sums: sums.read(),
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The non-finite policy, for every kind of step: whether `stepped` (batch `done` of
/// `epoch`) changed the weights; a non-finite step is skipped and counted in `skipped`, or
/// ends the fit, as the config says.
fn apply_nonfinite_policy(
    t: &Training,
    stepped: Stepped,
    (epoch, done): (usize, usize),
    skipped: &mut usize,
) -> Result<bool> {
    match stepped {
        Stepped::Taken => Ok(true),
        Stepped::SkippedByScaler => Ok(false),
        Stepped::NonFinite(what) if t.config.on_nonfinite == OnNonFinite::SkipBatch => {
            tracing::warn!(
                "{}: non-finite {what} at step {} (epoch {epoch}, batch {done}); batch skipped",
                t.phase,
                t.state.step
            );
            *skipped += 1;
            Ok(false)
        }
        Stepped::NonFinite(what) => Err(TrainError::NonFinite {
            phase: t.phase.into(),
            what,
            step: t.state.step,
            epoch,
            batch: done,
            checkpoint: last_good(t),
        }),
    }
}

/// Graphed steps find a non-finite loss or gradient on the device, skip the update there
/// and count it; the count is read once an epoch (of `batches` batches), here, and a
/// non-zero one ends the fit.
fn check_graphed_steps(t: &mut Training, epoch: usize, batches: usize) -> Result<()> {
    let nonfinite = t.stepper.take_nonfinite();
    if nonfinite == 0 {
        return Ok(());
    }
    Err(TrainError::NonFinite {
        phase: t.phase.into(),
        what: format!(
            "loss or gradient in {nonfinite} CUDA-graph step(s) of the epoch, left unapplied"
        ),
        step: t.state.step,
        epoch,
        batch: batches,
        checkpoint: last_good(t),
    })
}

/// The metrics of epoch `epoch` (begun at `started`) from its training `sums` (over every
/// rank, `train_seconds` of training) and validation, or the error of a diverged
/// validation; logged.
pub(crate) fn epoch_metrics(
    t: &Training,
    sums: EpochSums,
    validation: Evaluation,
    epoch: usize,
    started: Instant,
    train_seconds: f64,
) -> Result<EpochMetrics> {
    let (config, phase) = (t.config, t.phase);
    let total_steps = t.total_steps();
    if !validation.loss.is_finite() {
        return Err(TrainError::Diverged {
            phase: format!("{phase} (validation)"),
            epoch,
            loss: validation.loss,
        });
    }
    let m = EpochMetrics {
        epoch,
        loss: sums.loss,
        accuracy: sums.accuracy(),
        val_loss: validation.loss,
        val_accuracy: validation.accuracy,
        val_cross_entropy: validation.cross_entropy,
        lr: t.state.lr
            * config
                .lr_schedule
                .factor(t.state.step.saturating_sub(1), total_steps),
        parts: sums.parts,
        seconds: started.elapsed().as_secs_f64(),
        train_images_per_s: sums.images as f64 / train_seconds.max(1e-9),
        metrics: Vec::new(),
    };
    tracing::info!(
        "{phase} epoch {epoch}/{}: loss {:.4} - accuracy {:.4} - val_loss {:.4} - val_accuracy {:.4} - lr {:.2e} - {:.1}s ({:.0} img/s)",
        config.epochs,
        m.loss,
        m.accuracy,
        m.val_loss,
        m.val_accuracy,
        m.lr,
        m.seconds,
        m.train_images_per_s
    );
    Ok(m)
}

/// Fails a training pass whose loss is not finite, or that counted no image (every step
/// overflowed in float16 and was skipped).
pub(crate) fn check_trained(sums: &EpochSums, phase: &str, epoch: usize) -> Result<()> {
    let finite_parts = sums.parts.iter().all(|(_, v)| v.is_finite());
    if sums.loss.is_finite() && finite_parts && sums.images > 0 {
        return Ok(());
    }
    Err(TrainError::Diverged {
        phase: phase.into(),
        epoch,
        loss: if sums.images == 0 {
            f64::NAN
        } else {
            sums.loss
        },
    })
}

/// Adds epoch `m` to the history, with its skipped batches as an event.
pub(crate) fn record_epoch(t: &mut Training, m: EpochMetrics, skipped: usize) {
    let (epoch, phase) = (m.epoch, t.phase);
    if skipped > 0 {
        let detail = format!("{skipped} batches with a non-finite loss or gradient");
        t.state.event(epoch, "skipped_nonfinite", detail);
    }
    t.state.history.epochs.push(m);
    if let Some(s) = t.stepper.scaler().filter(|s| s.skipped_steps() > 0) {
        tracing::info!(
            "{phase}: float16 loss scale {}, {} steps skipped for non-finite gradients so far",
            s.scale(),
            s.skipped_steps()
        );
    }
}

/// The last good checkpoint of `t`, in words.
pub(crate) fn last_good(t: &Training) -> String {
    match t.checkpoints {
        Some(ck) if t.state.epoch > 0 => format!(
            "last good checkpoint: {} (after epoch {})",
            ck.last_path().display(),
            t.state.epoch
        ),
        Some(_) => "no checkpoint yet (it failed in the first epoch)".into(),
        None => "no checkpoints kept".into(),
    }
}

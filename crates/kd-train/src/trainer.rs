//! The training loop: Adam (Kingma & Ba 2015) over seeded mini-batches, validation after
//! every epoch, then the Keras-style callbacks decide (stop, change the learning rate, keep
//! or restore the best weights), in the order Keras runs them: early stopping, then
//! learning-rate reduction. With [`Checkpoints`], every epoch ends with a checkpoint and an
//! interrupted fit resumes from the last one.

use std::time::Instant;

use kd_data::{AugmentConfig, BatchLoader};
use kd_models::{Model, Precision};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::callback::{Action, Callback, EarlyStoppingConfig, ReduceLrConfig};
use crate::checkpoint::{Checkpoints, Snapshot, TrainState};
use crate::distributed::DataParallel;
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::loss_scale::LossScaler;
use crate::metrics::{DeviceSums, EpochMetrics, History};
use crate::nonfinite::{find_nonfinite, OnNonFinite};
use crate::objective::{Objective, Split};
use crate::optimizer::Adam;
use crate::progress::{NoProgress, Progress};
use crate::schedule::LrSchedule;

/// Hyperparameters of one training run; defaults are the seed's student settings
/// (20 epochs, batch 512, Adam 1e-3, EarlyStopping and ReduceLROnPlateau on `val_loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's (L2) weight decay.
    pub weight_decay: f64,
    /// Per-step schedule on top of the base rate (`constant` or `cosine`).
    pub lr_schedule: LrSchedule,
    /// Augmentation of the training images (off by default, as in the seed).
    pub augment: AugmentConfig,
    pub early_stopping: EarlyStoppingConfig,
    pub reduce_lr: ReduceLrConfig,
    /// What to do when a step's loss or gradient is NaN or infinite: `stop` or
    /// `skip_batch`.
    pub on_nonfinite: OnNonFinite,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 512,
            lr: 1e-3,
            weight_decay: 0.0,
            lr_schedule: LrSchedule::Constant,
            augment: AugmentConfig::default(),
            early_stopping: EarlyStoppingConfig::default(),
            reduce_lr: ReduceLrConfig::default(),
            on_nonfinite: OnNonFinite::Stop,
        }
    }
}

impl TrainConfig {
    /// Checks every range (epochs >= 1, batch_size >= 1, lr > 0, weight_decay >= 0, and the
    /// callbacks'); `key` prefixes error messages, e.g. `student.train`.
    pub fn validate(&self, key: &str) -> Result<()> {
        let invalid = |field: &str, expected: &str, got: String| TrainError::InvalidConfig {
            key: format!("{key}.{field}"),
            expected: expected.into(),
            got,
        };
        if self.epochs == 0 {
            return Err(invalid("epochs", "at least 1", "0".into()));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "at least 1", "0".into()));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(invalid("lr", "a finite value > 0", self.lr.to_string()));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(invalid(
                "weight_decay",
                "a finite value >= 0",
                self.weight_decay.to_string(),
            ));
        }
        self.early_stopping
            .build(&format!("{key}.early_stopping"))?;
        self.reduce_lr.build(&format!("{key}.reduce_lr"))?;
        Ok(())
    }
}

/// What a training run produced besides the trained weights.
#[derive(Debug, Clone, Serialize)]
pub struct FitOutcome {
    pub history: History,
    /// What the callbacks did, in order.
    pub events: Vec<TrainEvent>,
    /// The epoch early stopping ended training at, if it did.
    pub stopped_epoch: Option<usize>,
    /// Training time, summed over the processes of a resumed run.
    pub seconds: f64,
}

/// One callback action taken at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEvent {
    /// 1-based epoch after which it happened.
    pub epoch: usize,
    /// `early_stopping`, `reduce_lr`, `best_weights_kept`, `best_weights_restored`,
    /// `best_checkpoint` or `resumed`.
    pub action: String,
    /// Human-readable detail, e.g. `lr 1.00e-3 -> 1.00e-4`.
    pub detail: String,
}

fn snapshot(model: &Model) -> Snapshot {
    tch::no_grad(|| {
        model
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect()
    })
}

fn restore(model: &Model, snap: &Snapshot) {
    tch::no_grad(|| {
        for (name, mut t) in model.var_store().variables() {
            t.copy_(&snap[&name]);
        }
    });
}

/// What watches a fit besides its caller: progress display and checkpoints.
#[derive(Default)]
pub struct FitHooks<'a> {
    /// Told about every batch and epoch (`None`: nobody).
    pub progress: Option<&'a mut dyn Progress>,
    /// Where to checkpoint, and whether to resume (`None`: no checkpoints).
    pub checkpoints: Option<&'a Checkpoints>,
    /// Data parallelism over a process group (`None`: this process alone).
    pub parallel: Option<DataParallel<'a>>,
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
            .finish()
    }
}

/// Trains `model` on `train`, validating on `val` after each epoch; `phase` names the run in
/// log lines (`teacher`, `distilled`, ...).
pub fn fit(
    model: &Model,
    train: &BatchLoader,
    val: &BatchLoader,
    objective: &Objective,
    config: &TrainConfig,
    phase: &str,
) -> Result<FitOutcome> {
    fit_with(
        model,
        train,
        val,
        objective,
        config,
        phase,
        FitHooks::default(),
    )
}

/// [`fit`], reporting its progress and checkpointing through `hooks`. A resumed fit whose
/// checkpoint says it is complete only loads its final weights.
pub fn fit_with(
    model: &Model,
    train: &BatchLoader,
    val: &BatchLoader,
    objective: &Objective,
    config: &TrainConfig,
    phase: &str,
    hooks: FitHooks,
) -> Result<FitOutcome> {
    // A debug-level span: shown with `-v`, silent in the default epoch lines.
    let _span = tracing::debug_span!("fit", phase).entered();
    config.validate(phase)?;
    let start = Instant::now();
    let mut no_progress = NoProgress;
    let progress = hooks.progress.unwrap_or(&mut no_progress);
    let checkpoints = hooks.checkpoints;
    let parallel = hooks.parallel;
    if parallel.is_some() && model.precision() == Precision::F16 {
        return Err(TrainError::InvalidConfig {
            key: "precision".into(),
            expected: "f32 or bf16 with data parallelism (float16 loss scaling is per process)"
                .into(),
            got: "f16".into(),
        });
    }
    let mut opt = Adam::new(model.var_store(), config.lr, config.weight_decay);
    let fingerprint = checkpoints.map_or("", |c| c.fingerprint());
    let mut st = TrainState::new(fingerprint, phase, config);
    st.early = config
        .early_stopping
        .enabled
        .then(|| config.early_stopping.build("early_stopping"))
        .transpose()?;
    st.reduce = config
        .reduce_lr
        .enabled
        .then(|| config.reduce_lr.build("reduce_lr"))
        .transpose()?;
    // float16 needs loss scaling; float32 and bfloat16 do not.
    st.scaler = (model.precision() == Precision::F16).then(LossScaler::default);
    let mut best: Option<Snapshot> = None;
    if let Some(dp) = parallel {
        if config.batch_size < dp.world_size() {
            return Err(TrainError::InvalidConfig {
                key: format!("{phase}.batch_size"),
                expected: format!(
                    "at least the number of data-parallel ranks ({}): it is the global batch",
                    dp.world_size()
                ),
                got: config.batch_size.to_string(),
            });
        }
    }
    let mut resumed_from = None;
    if let Some(ck) = checkpoints {
        if let Some((restored, snap)) = ck.restore_last(phase, config, model, &mut opt)? {
            st = restored;
            best = snap;
            opt.set_lr(st.lr);
            resumed_from = Some(ck.last_path());
        }
    }
    if let Some(dp) = parallel {
        // Every rank must resume from the same state (the same checkpoint, read by each), or
        // their collectives would no longer pair up.
        let mine = [
            st.epoch as f64,
            st.step as f64,
            f64::from(u8::from(st.complete)),
            st.lr,
        ];
        let rank0 = dp.from_rank0(&mine).map_err(dist_error)?;
        if rank0 != mine {
            return Err(TrainError::Distributed(format!(
                "{phase}: rank {} resumes at epoch {}, step {} (complete: {}), rank 0 at epoch {}, step {} (complete: {}): every rank needs the same checkpoints (a shared run directory)",
                dp.rank(),
                mine[0],
                mine[1],
                mine[2] != 0.0,
                rank0[0],
                rank0[1],
                rank0[2] != 0.0
            )));
        }
    }
    if let Some(path) = resumed_from {
        if st.complete {
            tracing::info!(
                "{phase}: complete in {}, final weights loaded",
                path.display()
            );
            return Ok(st.outcome());
        }
        tracing::info!(
            "{phase}: resuming after epoch {} from {}",
            st.epoch,
            path.display()
        );
        st.events.push(TrainEvent {
            epoch: st.epoch,
            action: "resumed".into(),
            detail: format!("from {}", path.display()),
        });
    }
    if let Some(dp) = parallel {
        // Every rank starts from rank 0's weights (and, resumed, they are equal already).
        dp.broadcast_model(model).map_err(dist_error)?;
    }
    // Training time of the processes before this one (a resumed fit).
    let earlier_seconds = st.seconds;
    let mut trainable: Vec<Tensor> = opt.params().iter().map(|t| t.shallow_clone()).collect();
    let total_steps = config.epochs * train.num_batches();
    let monitor = config.early_stopping.monitor;

    for epoch in st.epoch + 1..=config.epochs {
        let epoch_start = Instant::now();
        objective.begin_epoch(epoch);
        progress.epoch_start(phase, epoch, config.epochs, train.num_batches());
        let mut skipped = 0usize;
        let sums = train.with_epoch(epoch, |batches| -> Result<DeviceSums> {
            let mut sums = DeviceSums::default();
            let mut done = 0;
            for batch in batches {
                if config.lr_schedule != LrSchedule::Constant {
                    opt.set_lr(st.lr * config.lr_schedule.factor(st.step, total_steps));
                }
                st.step += 1;
                // With data parallelism, this rank's share of the global batch; its mean loss
                // is weighted by the share so that the summed gradient is the global mean's.
                let (batch, share) = match parallel {
                    Some(dp) => {
                        let global = batch.len();
                        let mine = dp.shard(global);
                        let share = mine.len() as f64 / global.max(1) as f64;
                        (batch.slice(mine), share)
                    }
                    None => (batch, 1.0),
                };
                let forward = (!batch.is_empty())
                    .then(|| objective.forward_loss(model, &batch, Split::Train, true));
                let stepped = match (st.scaler.as_mut(), &forward) {
                    // float16: overflows are expected and skipped by the scaler's rules.
                    (Some(scaler), Some((_, out))) => {
                        scaler.backward_step(&mut trainable, &out.total, || opt.step())?
                    }
                    _ => {
                        let loss = forward.as_ref().map(|(_, out)| &out.total);
                        let problem =
                            backward_and_check(&mut opt, &trainable, loss, share, parallel)?;
                        match problem {
                            None => {
                                opt.step()?;
                                true
                            }
                            Some(what) if config.on_nonfinite == OnNonFinite::SkipBatch => {
                                tracing::warn!(
                                    "{phase}: non-finite {what} at step {} (epoch {epoch}, batch {}); batch skipped",
                                    st.step,
                                    done + 1
                                );
                                skipped += 1;
                                false
                            }
                            Some(what) => {
                                return Err(TrainError::NonFinite {
                                    phase: phase.into(),
                                    what,
                                    step: st.step,
                                    epoch,
                                    batch: done + 1,
                                    checkpoint: last_good(checkpoints, st.epoch),
                                });
                            }
                        }
                    }
                };
                // A float16 step skipped for an overflow is not part of the epoch's metrics
                // (its loss may be infinite); PyTorch's GradScaler skips it the same way.
                if let (true, Some((logits, out))) = (stepped, &forward) {
                    sums.add(logits, &batch.labels, out);
                }
                done += 1;
                progress.batch(done, &|| {
                    let r = sums.read();
                    (r.loss, r.accuracy())
                });
            }
            Ok(sums)
        })?;
        // The epoch's one host synchronisation: the sums are read here, not per step.
        let sums = match parallel {
            Some(dp) => sums.read().across(&dp).map_err(dist_error)?,
            None => sums.read(),
        };
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        let finite_parts = sums.parts.iter().all(|(_, v)| v.is_finite());
        if !sums.loss.is_finite() || !finite_parts || sums.images == 0 {
            // No image counted: every step overflowed in float16 and was skipped.
            return Err(TrainError::Diverged {
                phase: phase.into(),
                epoch,
                loss: if sums.images == 0 {
                    f64::NAN
                } else {
                    sums.loss
                },
            });
        }
        let mut v = evaluate(model, val, objective, Split::Validation);
        if let Some(dp) = parallel {
            // Every rank validates the same weights; rank 0's numbers drive every decision.
            let agreed = dp
                .from_rank0(&[v.loss, v.accuracy, v.cross_entropy])
                .map_err(dist_error)?;
            (v.loss, v.accuracy, v.cross_entropy) = (agreed[0], agreed[1], agreed[2]);
        }
        if !v.loss.is_finite() {
            return Err(TrainError::Diverged {
                phase: format!("{phase} (validation)"),
                epoch,
                loss: v.loss,
            });
        }
        let m = EpochMetrics {
            epoch,
            loss: sums.loss,
            accuracy: sums.accuracy(),
            val_loss: v.loss,
            val_accuracy: v.accuracy,
            val_cross_entropy: v.cross_entropy,
            lr: st.lr
                * config
                    .lr_schedule
                    .factor(st.step.saturating_sub(1), total_steps),
            parts: sums.parts,
            seconds: epoch_start.elapsed().as_secs_f64(),
            train_images_per_s: sums.images as f64 / train_seconds.max(1e-9),
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
        progress.epoch_end(phase, &m);
        if skipped > 0 {
            st.events.push(TrainEvent {
                epoch,
                action: "skipped_nonfinite".into(),
                detail: format!("{skipped} batches with a non-finite loss or gradient"),
            });
        }
        let monitored = monitor.value(&m);
        st.history.epochs.push(m);
        if let Some(s) = st.scaler.as_ref().filter(|s| s.skipped_steps() > 0) {
            tracing::info!(
                "{phase}: float16 loss scale {}, {} steps skipped for non-finite gradients so far",
                s.scale(),
                s.skipped_steps()
            );
        }

        let mut actions = Vec::new();
        if let Some(cb) = st.early.as_mut() {
            actions.extend(cb.on_epoch_end(&st.history, st.lr));
        }
        if let Some(cb) = st.reduce.as_mut() {
            actions.extend(cb.on_epoch_end(&st.history, st.lr));
        }
        if let Some(ck) = checkpoints {
            // The best checkpoint follows early stopping's rule (monitor and min_delta), so
            // it holds the weights early stopping would restore; written before any
            // restoring below changes the model.
            if monitor.improves(monitored, st.best_value, config.early_stopping.min_delta) {
                st.best_value = monitored;
                st.best_epoch = epoch;
                ck.save_best(model, epoch)?;
                st.events.push(TrainEvent {
                    epoch,
                    action: "best_checkpoint".into(),
                    detail: format!("{} ({monitor:?} {monitored:.4})", ck.best_path().display()),
                });
            }
        }
        let mut stop = false;
        for action in actions {
            let mut event = |action: &str, detail: String| {
                st.events.push(TrainEvent {
                    epoch,
                    action: action.into(),
                    detail,
                })
            };
            match action {
                Action::Stop => {
                    stop = true;
                    tracing::info!(
                        "{phase} epoch {epoch}: early stopping (no improvement of {} for {} epochs)",
                        config.early_stopping.monitor.name(),
                        config.early_stopping.patience
                    );
                    event(
                        "early_stopping",
                        "no improvement for `patience` epochs".into(),
                    );
                }
                Action::SetLr(new) => {
                    tracing::info!(
                        "{phase} epoch {epoch}: ReduceLROnPlateau reducing the learning rate from {:.2e} to {new:.2e}",
                        st.lr
                    );
                    event("reduce_lr", format!("lr {:.2e} -> {new:.2e}", st.lr));
                    st.lr = new;
                    opt.set_lr(st.lr);
                }
                Action::SnapshotBest => {
                    best = Some(snapshot(model));
                    event("best_weights_kept", format!("epoch {epoch}"));
                }
                Action::RestoreBest => {
                    if let Some(snap) = &best {
                        restore(model, snap);
                        tracing::info!(
                            "{phase} epoch {epoch}: restoring the weights of the best epoch ({})",
                            st.early.as_ref().map_or(0, |e| e.best_epoch())
                        );
                        event("best_weights_restored", "on early stopping".into());
                    }
                }
            }
        }
        if let Some(dp) = parallel {
            // Rank 0 decides whether to stop and which rate to use next; all ranks follow.
            let decided = dp
                .from_rank0(&[f64::from(u8::from(stop)), st.lr])
                .map_err(dist_error)?;
            if (decided[0] != 0.0) != stop || decided[1] != st.lr {
                tracing::warn!("{phase}: callbacks disagreed with rank 0; following rank 0");
            }
            stop = decided[0] != 0.0;
            st.lr = decided[1];
            opt.set_lr(st.lr);
        }
        st.epoch = epoch;
        if stop {
            st.stopped_epoch = st.early.as_ref().and_then(|e| e.stopped_epoch());
            break;
        }
        // The last epoch's state is the final checkpoint, written below.
        if let Some(ck) = checkpoints.filter(|_| epoch < config.epochs) {
            st.seconds = earlier_seconds + start.elapsed().as_secs_f64();
            st.adam_steps = opt.state().1;
            st.best_kept = best.is_some();
            ck.save_last(&st, model, &opt, best.as_ref())?;
        }
    }
    if let Some(cb) = &st.early {
        if cb.on_train_end().contains(&Action::RestoreBest) {
            if let Some(snap) = &best {
                restore(model, snap);
                tracing::info!(
                    "{phase}: restoring the weights of the best epoch ({}) at the end of training",
                    cb.best_epoch()
                );
                st.events.push(TrainEvent {
                    epoch: st.history.epochs.len(),
                    action: "best_weights_restored".into(),
                    detail: "at the end of training".into(),
                });
            }
        }
    }
    if let Some(dp) = parallel {
        // Batch-norm statistics are per rank: every rank leaves with rank 0's model (the one
        // saved), so whatever runs it next (a teacher's logits) runs the same model.
        dp.broadcast_model(model).map_err(dist_error)?;
    }
    st.seconds = earlier_seconds + start.elapsed().as_secs_f64();
    st.complete = true;
    if let Some(ck) = checkpoints {
        st.adam_steps = opt.state().1;
        st.best_kept = best.is_some();
        ck.save_last(&st, model, &opt, best.as_ref())?;
    }
    Ok(st.outcome())
}

/// Back-propagates `loss` (`None`: this rank has no images in the batch), with data
/// parallelism weighted by this rank's `share` and summed over ranks, and says what is not
/// finite, if anything. Takes no optimizer step.
fn backward_and_check(
    opt: &mut Adam,
    trainable: &[Tensor],
    loss: Option<&Tensor>,
    share: f64,
    parallel: Option<DataParallel>,
) -> Result<Option<String>> {
    let Some(dp) = parallel else {
        return Ok(loss.and_then(|loss| {
            opt.backward(loss);
            find_nonfinite(Some(loss), opt.names(), trainable)
        }));
    };
    let local_flag = match loss {
        Some(loss) => {
            opt.backward(&(loss * share));
            f64::from(!loss.double_value(&[]).is_finite())
        }
        None => {
            // No images here: a zero gradient to the sum.
            opt.zero_grad();
            for p in trainable {
                (p.sum(tch::Kind::Float) * 0.0).backward();
            }
            0.0
        }
    };
    // The flag rides with the gradients, so every rank sees every rank's bad loss.
    let flags = dp
        .all_reduce_gradients(trainable, local_flag)
        .map_err(dist_error)?;
    Ok(if flags > 0.0 {
        Some("loss (on at least one rank)".into())
    } else {
        find_nonfinite(None, opt.names(), trainable)
    })
}

fn dist_error(e: crate::distributed::DistError) -> TrainError {
    TrainError::Distributed(e.to_string())
}

/// The last good checkpoint of a fit after `epochs_done` epochs, in words.
fn last_good(checkpoints: Option<&Checkpoints>, epochs_done: usize) -> String {
    match checkpoints {
        Some(ck) if epochs_done > 0 => format!(
            "last good checkpoint: {} (after epoch {epochs_done})",
            ck.last_path().display()
        ),
        Some(_) => "no checkpoint yet (it failed in the first epoch)".into(),
        None => "no checkpoints kept".into(),
    }
}

impl TrainState {
    /// The outcome of a complete fit.
    fn outcome(&self) -> FitOutcome {
        FitOutcome {
            history: self.history.clone(),
            events: self.events.clone(),
            stopped_epoch: self.stopped_epoch,
            seconds: self.seconds,
        }
    }
}

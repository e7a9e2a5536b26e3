//! The training loop: Adam (Kingma & Ba 2015) over seeded mini-batches, validation after
//! every epoch, then the Keras-style callbacks decide (stop, change the learning rate, keep
//! or restore the best weights), in the order Keras runs them: early stopping, then
//! learning-rate reduction.

use std::collections::HashMap;
use std::time::Instant;

use kd_data::{AugmentConfig, BatchLoader};
use kd_models::{Model, Precision};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::Tensor;

use crate::callback::{Action, Callback, EarlyStoppingConfig, ReduceLrConfig};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::loss_scale::LossScaler;
use crate::metrics::{DeviceSums, EpochMetrics, History};
use crate::objective::{Objective, Split};
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
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// One callback action taken at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainEvent {
    /// 1-based epoch after which it happened.
    pub epoch: usize,
    /// `early_stopping`, `reduce_lr`, `best_weights_kept` or `best_weights_restored`.
    pub action: &'static str,
    /// Human-readable detail, e.g. `lr 1.00e-3 -> 1.00e-4`.
    pub detail: String,
}

/// Deep copies of every variable, to keep the best weights.
type Snapshot = HashMap<String, Tensor>;

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
    fit_with(model, train, val, objective, config, phase, &mut NoProgress)
}

/// [`fit`], reporting its progress to `progress`.
pub fn fit_with(
    model: &Model,
    train: &BatchLoader,
    val: &BatchLoader,
    objective: &Objective,
    config: &TrainConfig,
    phase: &str,
    progress: &mut dyn Progress,
) -> Result<FitOutcome> {
    // A debug-level span: shown with `-v`, silent in the default epoch lines.
    let _span = tracing::debug_span!("fit", phase).entered();
    config.validate(phase)?;
    let start = Instant::now();
    let mut opt = nn::Adam {
        wd: config.weight_decay,
        ..Default::default()
    }
    .build(model.var_store(), config.lr)?;
    let mut lr = config.lr;
    let mut early = config
        .early_stopping
        .enabled
        .then(|| config.early_stopping.build("early_stopping"))
        .transpose()?;
    let mut reduce = config
        .reduce_lr
        .enabled
        .then(|| config.reduce_lr.build("reduce_lr"))
        .transpose()?;
    // float16 needs loss scaling; float32 and bfloat16 do not.
    let mut scaler = (model.precision() == Precision::F16).then(LossScaler::default);
    let trainable = model.var_store().trainable_variables();
    let mut history = History::default();
    let mut events = Vec::new();
    let mut best: Option<Snapshot> = None;
    let total_steps = config.epochs * train.num_batches();
    let mut step = 0;

    for epoch in 1..=config.epochs {
        let epoch_start = Instant::now();
        objective.begin_epoch(epoch);
        progress.epoch_start(phase, epoch, config.epochs, train.num_batches());
        let sums = train.with_epoch(epoch, |batches| {
            let mut sums = DeviceSums::default();
            let mut done = 0;
            for batch in batches {
                if config.lr_schedule != LrSchedule::Constant {
                    opt.set_lr(lr * config.lr_schedule.factor(step, total_steps));
                }
                step += 1;
                let (logits, out) = objective.forward_loss(model, &batch, Split::Train, true);
                let stepped = match scaler.as_mut() {
                    Some(scaler) => scaler.backward_step(&mut opt, &trainable, &out.total),
                    None => {
                        opt.backward_step(&out.total);
                        true
                    }
                };
                // A float16 step skipped for an overflow is not part of the epoch's metrics
                // (its loss may be infinite); PyTorch's GradScaler skips it the same way.
                if stepped {
                    sums.add(&logits, &batch.labels, &out);
                }
                done += 1;
                progress.batch(done, &|| {
                    let r = sums.read();
                    (r.loss, r.accuracy())
                });
            }
            sums
        });
        // The epoch's one host synchronisation: the sums are read here, not per step.
        let sums = sums.read();
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        if !sums.loss.is_finite() || sums.images == 0 {
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
        let v = evaluate(model, val, objective, Split::Validation);
        let m = EpochMetrics {
            epoch,
            loss: sums.loss,
            accuracy: sums.accuracy(),
            val_loss: v.loss,
            val_accuracy: v.accuracy,
            lr: lr
                * config
                    .lr_schedule
                    .factor(step.saturating_sub(1), total_steps),
            parts: sums.parts,
            seconds: epoch_start.elapsed().as_secs_f64(),
            train_images_per_s: sums.images as f64 / train_seconds,
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
        history.epochs.push(m);
        if let Some(s) = scaler.as_ref().filter(|s| s.skipped_steps() > 0) {
            tracing::info!(
                "{phase}: float16 loss scale {}, {} steps skipped for non-finite gradients so far",
                s.scale(),
                s.skipped_steps()
            );
        }

        let mut actions = Vec::new();
        if let Some(cb) = early.as_mut() {
            actions.extend(cb.on_epoch_end(&history, lr));
        }
        if let Some(cb) = reduce.as_mut() {
            actions.extend(cb.on_epoch_end(&history, lr));
        }
        let mut stop = false;
        for action in actions {
            let mut event = |action, detail: String| {
                events.push(TrainEvent {
                    epoch,
                    action,
                    detail,
                })
            };
            match action {
                Action::Stop => {
                    stop = true;
                    event(
                        "early_stopping",
                        "no improvement for `patience` epochs".into(),
                    );
                }
                Action::SetLr(new) => {
                    event("reduce_lr", format!("lr {lr:.2e} -> {new:.2e}"));
                    lr = new;
                    opt.set_lr(lr);
                }
                Action::SnapshotBest => {
                    best = Some(snapshot(model));
                    event("best_weights_kept", format!("epoch {epoch}"));
                }
                Action::RestoreBest => {
                    if let Some(snap) = &best {
                        restore(model, snap);
                        event("best_weights_restored", "on early stopping".into());
                    }
                }
            }
        }
        if stop {
            break;
        }
    }
    if let Some(cb) = &early {
        if cb.on_train_end().contains(&Action::RestoreBest) {
            if let Some(snap) = &best {
                restore(model, snap);
                events.push(TrainEvent {
                    epoch: history.epochs.len(),
                    action: "best_weights_restored",
                    detail: "at the end of training".into(),
                });
            }
        }
    }
    Ok(FitOutcome {
        stopped_epoch: early.as_ref().and_then(|e| e.stopped_epoch()),
        history,
        events,
        seconds: start.elapsed().as_secs_f64(),
    })
}

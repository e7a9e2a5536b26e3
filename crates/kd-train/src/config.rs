//! The settings of one fit: epochs, batch size, Adam, the learning-rate schedule,
//! augmentation, the callbacks' settings and the non-finite policy, with their range checks.

use kd_data::AugmentConfig;
use serde::{Deserialize, Serialize};

use crate::callback::{EarlyStoppingConfig, ReduceLrConfig};
use crate::error::{Result, TrainError};
use crate::nonfinite::OnNonFinite;
use crate::schedule::LrSchedule;

/// Hyperparameters of one training run; defaults are the seed's student settings
/// (20 epochs, batch 512, Adam 1e-3, EarlyStopping and ReduceLROnPlateau on `val_loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs at most (early stopping may end sooner).
    pub epochs: usize,
    /// Images per optimizer step (over every rank, under data parallelism).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's (L2) weight decay.
    pub weight_decay: f64,
    /// Per-step schedule on top of the base rate (`constant` or `cosine`).
    pub lr_schedule: LrSchedule,
    /// Augmentation of the training images (off by default, as in the seed).
    pub augment: AugmentConfig,
    /// Keras' `EarlyStopping`.
    pub early_stopping: EarlyStoppingConfig,
    /// Keras' `ReduceLROnPlateau`.
    pub reduce_lr: ReduceLrConfig,
    /// What to do when a step's loss or gradient is NaN or infinite: `stop` or
    /// `skip_batch`.
    pub on_nonfinite: OnNonFinite,
    /// Training steps as CUDA graphs: unset (the default) where the device and the fit
    /// allow it, `true` to require it (an error says what prevents it), `false` for eager
    /// steps. See `graphed.rs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_graphs: Option<bool>,
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
            cuda_graphs: None,
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

    /// Checks that the monitored metrics (early stopping's, which also decides "best", and
    /// an enabled ReduceLROnPlateau's) are metrics of the fit, given its first epoch's; the
    /// error names the key and the metrics there are.
    pub fn check_monitors(&self, key: &str, first: &crate::EpochMetrics) -> Result<()> {
        let reduce_lr = self.reduce_lr.enabled.then_some(&self.reduce_lr.monitor);
        let monitors = [
            ("early_stopping", Some(&self.early_stopping.monitor)),
            ("reduce_lr", reduce_lr),
        ];
        for (section, monitor) in monitors {
            let Some(monitor) = monitor.filter(|m| first.value(m.name()).is_none()) else {
                continue;
            };
            return Err(TrainError::InvalidConfig {
                key: format!("{key}.{section}.monitor"),
                expected: format!("one of this fit's metrics {:?}", first.names()),
                got: format!("{:?}", monitor.name()),
            });
        }
        Ok(())
    }
}

//! Logit-standardized KD (Sun et al. 2024, "Logit Standardization in Knowledge
//! Distillation", CVPR): both models' logits are z-scored per sample before the softened
//! softmax, so the student matches the teacher's logit *relations* rather than their
//! magnitude, with one base temperature for both:
//!
//! ```text
//! z(x) = (x - mean(x)) / (1e-7 + std(x))          # per row, unbiased std, as the authors' code
//! ce_weight * CE(s, y) + kd_weight * T^2 * KL(softmax(z(t) / T) || softmax(z(s) / T))  # batch mean
//! ```

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{
    check_nonnegative, check_temperature, check_two_classes, kl_rows, label_term, DistillLoss,
    LossParts,
};
use crate::error::Result;

/// Hyperparameters of [`LogitStandardKd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogitStandardKdConfig {
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the standardized KL term.
    pub kd_weight: f64,
    /// Base temperature applied to the standardized logits.
    pub temperature: f64,
}

impl Default for LogitStandardKdConfig {
    /// The authors' CIFAR-100 KD setting: CE weight 0.1, KD weight 9, base temperature 2.
    fn default() -> Self {
        Self {
            ce_weight: 0.1,
            kd_weight: 9.0,
            temperature: 2.0,
        }
    }
}

impl LogitStandardKdConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<LogitStandardKd> {
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "kd_weight", self.kd_weight)?;
        check_temperature(key, self.temperature)?;
        Ok(LogitStandardKd {
            config: self.clone(),
        })
    }
}

/// `(x - mean) / (1e-7 + std)` over the last dimension (unbiased std, needs 2+ classes).
pub fn standardize(x: &Tensor) -> Tensor {
    let mean = x.mean_dim(-1, true, Kind::Float);
    let std = x.std_dim(-1, true, true);
    (x - mean) / (std + 1e-7)
}

/// Logit-standardized KD (see the module documentation).
#[derive(Debug, Clone)]
pub struct LogitStandardKd {
    config: LogitStandardKdConfig,
}

impl DistillLoss for LogitStandardKd {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let LogitStandardKdConfig {
            ce_weight,
            kd_weight,
            temperature: t,
        } = self.config;
        let hard = label_term(student, labels);
        let soft = kl_rows(&(standardize(teacher) / t), &(standardize(student) / t))
            .mean(Kind::Float)
            * (t * t);
        LossParts {
            total: &hard * ce_weight + &soft * kd_weight,
            parts: vec![("student_loss", hard), ("distillation_loss", soft)],
        }
    }

    fn check_classes(&self, classes: usize) -> Result<()> {
        check_two_classes(classes, "standardize logits")
    }
}

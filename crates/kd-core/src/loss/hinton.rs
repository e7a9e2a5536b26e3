//! Hinton knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in
//! a Neural Network", arXiv:1503.02531) as PyTorch code writes it:
//!
//! ```text
//! alpha * F.cross_entropy(s, y)
//!   + (1 - alpha) * T^2 * F.kl_div(F.log_softmax(s / T), F.softmax(t / T), reduction="batchmean")
//! ```
//!
//! The `T^2` factor keeps the soft term's gradients at the same scale for every `T`
//! (section 2 of the paper); `batchmean` sums over classes and averages over the batch.
//! Both distributions are handled as log-probabilities, so saturated logits give exact
//! zeros instead of `0 * log 0`.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{check_temperature, check_unit, kl_rows, label_term, DistillLoss, LossParts};
use crate::error::Result;

/// Hyperparameters of [`HintonKd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HintonKdConfig {
    /// Weight of the hard-label cross-entropy; the soft term gets `1 - alpha`.
    pub alpha: f64,
    /// Softmax temperature of the soft term.
    pub temperature: f64,
}

impl Default for HintonKdConfig {
    /// `alpha = 0.1`, `T = 4`: a common CIFAR setting (e.g. torchdistill's KD configs).
    fn default() -> Self {
        Self {
            alpha: 0.1,
            temperature: 4.0,
        }
    }
}

impl HintonKdConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<HintonKd> {
        check_unit(key, "alpha", self.alpha)?;
        check_temperature(key, self.temperature)?;
        Ok(HintonKd {
            config: self.clone(),
        })
    }
}

/// Hinton KD with PyTorch `batchmean` semantics and the `T^2` factor.
#[derive(Debug, Clone)]
pub struct HintonKd {
    config: HintonKdConfig,
}

impl DistillLoss for HintonKd {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let HintonKdConfig {
            alpha,
            temperature: t,
        } = self.config;
        let hard = label_term(student, labels);
        let soft = kl_rows(&(teacher / t), &(student / t)).mean(tch::Kind::Float) * (t * t);
        LossParts {
            total: &hard * alpha + &soft * (1.0 - alpha),
            parts: vec![("student_loss", hard), ("distillation_loss", soft)],
        }
    }
}

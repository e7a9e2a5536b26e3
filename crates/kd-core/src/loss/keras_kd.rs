//! The seed notebook's distillation loss, with Keras semantics:
//!
//! `alpha * CE(labels, student) + (1 - alpha) * KL(softmax(teacher / T) || softmax(student / T))`
//!
//! - CE is `keras.losses.CategoricalCrossentropy(from_logits=True)` on one-hot labels: the
//!   batch mean of `-log softmax(student)[label]`.
//! - KL is `keras.losses.KLDivergence()`: both distributions clipped to `[1e-7, 1]`, then
//!   `sum(p * log(p / q))` over classes, averaged over the batch.
//! - Hinton et al. (2015, "Distilling the Knowledge in a Neural Network",
//!   arXiv:1503.02531) multiply the soft term by `T^2` to keep its gradient scale independent
//!   of `T`; the seed does not, and neither does this loss unless `temperature_squared` is set.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{check_temperature, check_unit, label_term, DistillLoss, LossParts};
use crate::error::Result;

/// Keras' `backend.epsilon()`, the clip floor of `KLDivergence`.
pub const KERAS_EPSILON: f64 = 1e-7;

/// Hyperparameters of [`KerasKd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KerasKdConfig {
    /// Weight of the hard-label cross-entropy; the soft term gets `1 - alpha`.
    pub alpha: f64,
    /// Softmax temperature applied to both models' logits in the soft term.
    pub temperature: f64,
    /// Multiply the soft term by `T^2` (Hinton et al.); off in the seed.
    #[serde(alias = "scale_by_t_squared")]
    pub temperature_squared: bool,
}

impl Default for KerasKdConfig {
    /// The seed's `distiller.compile(alpha=0.7, temperature=1)`.
    fn default() -> Self {
        Self {
            alpha: 0.7,
            temperature: 1.0,
            temperature_squared: false,
        }
    }
}

impl KerasKdConfig {
    /// Checks ranges (`alpha` in [0, 1], `temperature` > 0) and builds the loss; `key`
    /// prefixes error messages.
    pub fn build(&self, key: &str) -> Result<KerasKd> {
        check_unit(key, "alpha", self.alpha)?;
        check_temperature(key, self.temperature)?;
        Ok(KerasKd {
            config: self.clone(),
        })
    }
}

/// The seed's distillation loss (see the module documentation).
#[derive(Debug, Clone)]
pub struct KerasKd {
    config: KerasKdConfig,
}

/// `keras.losses.KLDivergence()(p, q)` for probability rows `p`, `q` of shape `[b, k]`.
pub fn keras_kl_divergence(p: &Tensor, q: &Tensor) -> Tensor {
    let p = p.clamp(KERAS_EPSILON, 1.0);
    let q = q.clamp(KERAS_EPSILON, 1.0);
    (&p * (&p / q).log())
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

impl DistillLoss for KerasKd {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let KerasKdConfig {
            alpha,
            temperature: t,
            temperature_squared,
        } = self.config;
        let hard = label_term(student, labels);
        let p_teacher = (teacher / t).softmax(-1, Kind::Float);
        let p_student = (student / t).softmax(-1, Kind::Float);
        let mut soft = keras_kl_divergence(&p_teacher, &p_student);
        if temperature_squared {
            soft *= t * t;
        }
        let total = &hard * alpha + &soft * (1.0 - alpha);
        LossParts {
            total,
            parts: vec![("student_loss", hard), ("distillation_loss", soft)],
        }
    }
}

//! Distillation losses: functions from student logits, teacher logits and labels to a loss.

pub mod keras_kd;

use tch::Tensor;

pub use keras_kd::{KerasKd, KerasKdConfig};

/// A loss and the named terms it is made of (each a scalar tensor; `total` carries the
/// gradient).
#[derive(Debug)]
pub struct LossParts {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// A distillation objective.
pub trait DistillLoss: std::fmt::Debug + Send {
    /// The loss for student logits `[b, k]`, teacher logits `[b, k]` and labels `[b]` (i64).
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts;
}

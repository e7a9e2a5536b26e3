//! Distillation losses: functions from student logits, teacher logits and labels to a loss
//! and its named terms. Each loss lives in its own file with its paper; [`LossConfig`]
//! selects one by name from a config.

pub mod attention;
pub mod config;
pub mod crd;
pub mod dist;
pub mod dkd;
pub mod feature;
pub mod fitnets;
pub mod hinton;
pub mod keras_kd;
pub mod lskd;
pub mod mlkd;
pub mod rkd;
pub mod simkd;

use tch::{Kind, Tensor};

pub use attention::{AttentionConfig, AttentionTransfer};
pub use config::LossConfig;
pub use crd::{Crd, CrdConfig};
pub use dist::{Dist, DistConfig};
pub use dkd::{Dkd, DkdConfig};
pub use feature::FeatureLoss;
pub use fitnets::{FitNetsConfig, FitNetsHint};
pub use hinton::{HintonKd, HintonKdConfig};
pub use keras_kd::{KerasKd, KerasKdConfig};
pub use lskd::{LogitStandardKd, LogitStandardKdConfig};
pub use mlkd::{Mlkd, MlkdConfig};
pub use rkd::{Rkd, RkdConfig};
pub use simkd::{SimKd, SimKdConfig};

use crate::error::{CoreError, Result};

/// A loss and the named terms it is made of (each a scalar tensor; `total` carries the
/// gradient).
#[derive(Debug)]
pub struct LossParts {
    /// The value to minimize.
    pub total: Tensor,
    /// Its terms before weighting, e.g. `student_loss` and `distillation_loss`.
    pub parts: Vec<(&'static str, Tensor)>,
}

/// A distillation objective on logits.
pub trait DistillLoss: std::fmt::Debug + Send {
    /// The loss for student logits `[b, k]`, teacher logits `[b, k]` and labels `[b]` (i64).
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts;

    /// Called by a training loop before each epoch (counting from 1), for losses with a
    /// schedule (DKD's warm-up); a no-op by default.
    fn begin_epoch(&self, _epoch: usize) {}

    /// Whether the loss launches only device work with values fixed across steps (what a
    /// CUDA graph can capture and replay); true by default.
    fn capturable(&self) -> bool {
        true
    }

    /// Checks that the loss is defined for `classes` classes; any count by default.
    fn check_classes(&self, _classes: usize) -> Result<()> {
        Ok(())
    }
}

/// The label of a row that has none (an image of the transfer set): its label term is 0
/// and only the teacher teaches it. Equal to kd-data's `UNLABELED_TARGET`.
pub const NO_LABEL: i64 = -1;

/// The label term of a batch: the cross-entropy of `student` logits `[b, k]` against
/// `labels` `[b]`, summed over the labelled rows and divided by the whole batch size `b`, so
/// each row weighs `1 / b` whether or not it has a label and rows labelled [`NO_LABEL`] add
/// nothing. On a batch where every row has a label this is PyTorch's
/// `F.cross_entropy(s, y)`; on a mixed batch of `l` labelled and `u` unlabeled rows the
/// whole loss is `l / b` times the labelled rows' loss plus `u / b` times the unlabeled
/// rows'.
pub fn label_term(student: &Tensor, labels: &Tensor) -> Tensor {
    let rows = student.size()[0].max(1) as f64;
    student.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Sum, NO_LABEL, 0.0) / rows
}

/// Per-row `KL(softmax(p_logits) || softmax(q_logits))` `[b]`, from log-probabilities: a
/// class with probability 0 under `p` contributes exactly 0.
pub fn kl_rows(p_logits: &Tensor, q_logits: &Tensor) -> Tensor {
    let log_p = p_logits.log_softmax(-1, Kind::Float);
    let log_q = q_logits.log_softmax(-1, Kind::Float);
    (log_p.exp() * (&log_p - log_q)).sum_dim_intlist(-1, false, Kind::Float)
}

fn invalid(key: &str, field: &str, expected: &str, got: f64) -> CoreError {
    CoreError::InvalidConfig {
        key: format!("{key}.{field}"),
        expected: expected.into(),
        got: got.to_string(),
    }
}

/// `value` must lie in `[0, 1]`.
pub(crate) fn check_unit(key: &str, field: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, field, "a value in [0, 1]", value))
    }
}

/// `value` must be finite and `>= 0`.
pub(crate) fn check_nonnegative(key: &str, field: &str, value: f64) -> Result<()> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(key, field, "a finite value >= 0", value))
    }
}

/// A loss that splits or standardizes over classes needs at least two; `why` says what for.
pub(crate) fn check_two_classes(classes: usize, why: &str) -> Result<()> {
    if classes >= 2 {
        Ok(())
    } else {
        Err(CoreError::InvalidConfig {
            key: "classes".into(),
            expected: format!("at least 2 classes to {why}"),
            got: classes.to_string(),
        })
    }
}

/// A temperature must be finite and `> 0`.
pub(crate) fn check_temperature(key: &str, value: f64) -> Result<()> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(key, "temperature", "a finite value > 0", value))
    }
}

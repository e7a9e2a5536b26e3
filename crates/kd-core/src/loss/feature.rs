//! What a feature-level loss is to the [`crate::Distiller`]: a loss between an intermediate
//! feature of the student and one of the teacher (the outputs of the layers it names), next
//! to the student's logits and the labels. FitNets ([`super::fitnets`]), attention transfer
//! ([`super::attention`]), relational KD ([`super::rkd`]) and CRD ([`super::crd`]) are
//! feature losses; the teacher runs live on every batch for them (no logit cache).

use tch::Tensor;

use super::LossParts;

/// A loss between a student feature and a teacher feature.
pub trait FeatureLoss: std::fmt::Debug + Send {
    /// The student's and the teacher's layers whose outputs it compares.
    fn layers(&self) -> [&str; 2];

    /// The loss for student logits `[b, k]`, the student's feature `[b, ...]`, the
    /// teacher's feature `[b, ...]` and labels `[b]` (unlabeled rows `-1`).
    fn loss(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
    ) -> LossParts;

    /// [`FeatureLoss::loss`] knowing, on a training batch, each row's index in the training
    /// set (`rows`; `None` on validation batches): for a loss that keeps state per training
    /// image (CRD's memory banks). The same as `loss` by default.
    fn loss_on(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
        _rows: Option<&Tensor>,
    ) -> LossParts {
        self.loss(student_logits, student_feature, teacher_feature, labels)
    }

    /// Whether a step launches only device work with values fixed across steps (what a
    /// CUDA graph can capture); true by default.
    fn capturable(&self) -> bool {
        true
    }
}

/// Checks a layer name of a feature loss; `key.field` names it in the error.
pub(crate) fn check_layer(key: &str, field: &str, value: &str) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::CoreError::InvalidConfig {
            key: format!("{key}.{field}"),
            expected: "a layer name such as features.9".into(),
            got: "an empty name".into(),
        });
    }
    Ok(())
}

/// The teacher's feature map `[b, c_t, h', w']` average-pooled to the student's spatial size
/// (`F.adaptive_avg_pool2d`), for losses that compare the two position by position.
pub(crate) fn pooled_to_student(teacher: &Tensor, student: &Tensor) -> Tensor {
    let size = student.size();
    teacher.adaptive_avg_pool2d([size[2], size[3]])
}

/// `x / max(|x|, 1e-12)` along `dim` (PyTorch's `F.normalize`).
pub(crate) fn normalize(x: &Tensor, dim: i64) -> Tensor {
    x / x.norm_scalaropt_dim(2, [dim], true).clamp_min(1e-12)
}

//! What a training run minimizes: plain cross-entropy on the labels, or what kd-core's
//! [`Distiller`] says — a distillation loss against the frozen teacher's logits (cached or
//! live) or a FitNets hint between features.

use kd_core::{Distiller, Examples, LossParts, Split};
use kd_data::Batch;
use kd_models::Network;
use tch::Tensor;

use crate::batches::BatchSource;
use crate::error::{Result, TrainError};

/// The training objective.
#[derive(Debug, Clone, Copy)]
pub enum Objective<'a> {
    /// Cross-entropy against the labels.
    CrossEntropy,
    /// Distillation from a teacher.
    Distill(Distiller<'a>),
}

/// The Distiller's view of a loader's batch.
pub(crate) fn examples(batch: &Batch) -> Examples<'_> {
    Examples {
        images: &batch.images,
        labels: &batch.labels,
        indices: &batch.indices,
    }
}

impl Objective<'_> {
    /// Whether a training step launches only device work on `device` (what a CUDA graph
    /// can capture).
    pub(crate) fn capturable_on(&self, device: tch::Device) -> bool {
        match self {
            Self::CrossEntropy => true,
            Self::Distill(distiller) => distiller.capturable_on(device),
        }
    }

    /// Tells schedule-dependent losses that `epoch` (from 1) begins.
    pub fn begin_epoch(&self, epoch: usize) {
        if let Self::Distill(distiller) = self {
            distiller.begin_epoch(epoch);
        }
    }

    /// Refuses training images without labels for an objective that learns from labels
    /// alone: cross-entropy would have nothing to learn from them (only a teacher does).
    pub(crate) fn check_labels(&self, train: &dyn BatchSource, phase: &str) -> Result<()> {
        let (images, unlabeled) = train.images();
        if matches!(self, Self::CrossEntropy) && unlabeled > 0 {
            return Err(TrainError::InvalidConfig {
                key: format!("{phase}: training images"),
                expected: "labelled images only (cross-entropy learns from labels; unlabeled images need a teacher)".into(),
                got: format!("{unlabeled} unlabeled of {images}"),
            });
        }
        Ok(())
    }

    /// Why students under this objective cannot train in one fused population, if they
    /// cannot ([`Distiller::unfusable`]).
    pub(crate) fn unfusable(&self) -> Option<&'static str> {
        match self {
            Self::CrossEntropy => None,
            Self::Distill(distiller) => distiller.unfusable(),
        }
    }

    /// Whether one batch's teacher logits serve both objectives (neither has a teacher, or
    /// both the same).
    pub(crate) fn same_teacher(&self, other: &Objective<'_>) -> bool {
        match (self, other) {
            (Self::CrossEntropy, Objective::CrossEntropy) => true,
            (Self::Distill(a), Objective::Distill(b)) => a.same_teacher(b),
            _ => false,
        }
    }

    /// The teacher's logits for `batch` (`None` for cross-entropy).
    pub(crate) fn teacher_logits(&self, batch: &Batch, split: Split) -> Option<Tensor> {
        match self {
            Self::CrossEntropy => None,
            Self::Distill(distiller) => distiller.teacher_logits(examples(batch), split),
        }
    }

    /// The loss of given student `logits` on `batch`, with the teacher's logits of the batch
    /// (from [`Objective::teacher_logits`]): what [`Objective::forward_loss`] computes from
    /// the student's own forward pass, for an objective that is not
    /// [`unfusable`](Objective::unfusable).
    pub(crate) fn loss_of(
        &self,
        logits: &Tensor,
        teacher: Option<&Tensor>,
        labels: &Tensor,
    ) -> LossParts {
        match (self, teacher) {
            (Self::Distill(distiller), Some(teacher)) => distiller
                .loss_with(logits, teacher, labels)
                .expect("a fusable distiller has a logit loss"),
            _ => LossParts {
                total: logits.cross_entropy_for_logits(labels),
                parts: Vec::new(),
            },
        }
    }

    /// Runs `model` on `batch` (training behaviour if `train`) and returns its logits and
    /// the loss.
    pub fn forward_loss(
        &self,
        model: &dyn Network,
        batch: &Batch,
        split: Split,
        train: bool,
    ) -> (Tensor, LossParts) {
        match self {
            Self::Distill(distiller) => distiller.step(model, examples(batch), split, train),
            Self::CrossEntropy => {
                let logits = model.forward_t(&batch.images, train);
                let loss = LossParts {
                    total: logits.cross_entropy_for_logits(&batch.labels),
                    parts: Vec::new(),
                };
                (logits, loss)
            }
        }
    }
}

//! What a training run minimizes: plain cross-entropy on labels, or a distillation loss
//! against the teacher's logits — gathered from a [`LogitCache`] (the teacher is frozen, so
//! its logits on un-augmented images never change) or computed live on each batch (needed
//! when the batch is randomly augmented, for consistent teaching).

use kd_core::{DistillLoss, LogitCache, LossParts};
use kd_data::Batch;
use kd_models::Model;
use tch::Tensor;

/// Which split a batch comes from (selects the cached teacher logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
}

/// Where the teacher's logits come from.
#[derive(Debug, Clone, Copy)]
pub enum TeacherSignal<'a> {
    /// Logits cached once per image of the training and validation sets.
    Cached {
        train: &'a LogitCache,
        val: &'a LogitCache,
    },
    /// The frozen teacher, run in inference mode on every batch.
    Live(&'a Model),
}

/// The training objective.
#[derive(Debug)]
pub enum Objective<'a> {
    /// Cross-entropy against the labels.
    CrossEntropy,
    /// A distillation loss against the teacher's logits.
    Distill {
        loss: &'a dyn DistillLoss,
        teacher: TeacherSignal<'a>,
    },
}

impl Objective<'_> {
    /// Tells schedule-dependent losses that `epoch` (from 1) begins.
    pub fn begin_epoch(&self, epoch: usize) {
        if let Self::Distill { loss, .. } = self {
            loss.begin_epoch(epoch);
        }
    }

    /// The teacher's logits for `batch` (`None` for cross-entropy).
    pub fn teacher_logits(&self, batch: &Batch, split: Split) -> Option<Tensor> {
        let Self::Distill { teacher, .. } = self else {
            return None;
        };
        let device = batch.images.device();
        Some(match (teacher, split) {
            (TeacherSignal::Cached { train, .. }, Split::Train) => {
                train.gather(&batch.indices, device)
            }
            (TeacherSignal::Cached { val, .. }, Split::Validation) => {
                val.gather(&batch.indices, device)
            }
            (TeacherSignal::Live(model), _) => {
                tch::no_grad(|| model.forward_t(&batch.images, false))
            }
        })
    }

    /// The loss of `logits` on `batch`.
    pub fn loss(&self, logits: &Tensor, batch: &Batch, split: Split) -> LossParts {
        match (self, self.teacher_logits(batch, split)) {
            (Self::Distill { loss, .. }, Some(teacher)) => {
                loss.loss(logits, &teacher, &batch.labels)
            }
            _ => LossParts {
                total: logits.cross_entropy_for_logits(&batch.labels),
                parts: Vec::new(),
            },
        }
    }
}

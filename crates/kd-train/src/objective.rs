//! What a training run minimizes: plain cross-entropy on labels, or a distillation loss
//! against teacher logits cached once per dataset (the teacher is frozen, so its logits on
//! un-augmented images never change and need not be recomputed every epoch).

use kd_core::{DistillLoss, LossParts};
use kd_data::Batch;
use tch::Tensor;

/// Which split a batch comes from (selects the cached teacher logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
}

/// The training objective.
#[derive(Debug)]
pub enum Objective<'a> {
    /// Cross-entropy against the labels.
    CrossEntropy,
    /// A distillation loss; `teacher_train[i]` / `teacher_val[i]` are the teacher's logits for
    /// image `i` of the training / validation set.
    Distill {
        loss: &'a dyn DistillLoss,
        teacher_train: &'a Tensor,
        teacher_val: &'a Tensor,
    },
}

impl Objective<'_> {
    /// The loss of `logits` on `batch`.
    pub fn loss(&self, logits: &Tensor, batch: &Batch, split: Split) -> LossParts {
        match self {
            Self::CrossEntropy => LossParts {
                total: logits.cross_entropy_for_logits(&batch.labels),
                parts: Vec::new(),
            },
            Self::Distill {
                loss,
                teacher_train,
                teacher_val,
            } => {
                let cache = match split {
                    Split::Train => teacher_train,
                    Split::Validation => teacher_val,
                };
                let teacher = cache.index_select(0, &batch.indices.to_device(cache.device()));
                loss.loss(logits, &teacher.to_device(logits.device()), &batch.labels)
            }
        }
    }
}

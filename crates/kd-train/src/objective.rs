//! What a training run minimizes: plain cross-entropy on labels, or a distillation loss
//! against the teacher's logits — gathered from a [`LogitCache`] (the teacher is frozen, so
//! its logits on un-augmented images never change) or computed live on each batch (needed
//! when the batch is randomly augmented, for consistent teaching) — or a FitNets hint
//! between intermediate features, with the teacher run on every batch.

use kd_core::{DistillLoss, FitNetsHint, LogitCache, LossParts};
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
    /// A FitNets hint from the live teacher's feature to the student's.
    Hint {
        hint: &'a FitNetsHint,
        teacher: &'a Model,
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

    /// Runs `model` on `batch` (training behaviour if `train`) and returns its logits and
    /// the loss.
    pub fn forward_loss(
        &self,
        model: &Model,
        batch: &Batch,
        split: Split,
        train: bool,
    ) -> (Tensor, LossParts) {
        let Self::Hint { hint, teacher } = self else {
            let logits = model.forward_t(&batch.images, train);
            let loss = self.loss(&logits, batch, split);
            return (logits, loss);
        };
        let c = hint.config();
        let checked = "hinted layers are checked to exist before training";
        // The teacher stops at its hinted layer; the student also needs its logits.
        let t_feature =
            tch::no_grad(|| teacher.forward_feature(&batch.images, false, &c.teacher_layer))
                .expect(checked);
        let (logits, s_feature) = model
            .forward_features(&batch.images, train, &[&c.student_layer])
            .expect(checked);
        let loss = hint.loss(&logits, &s_feature[0], &t_feature, &batch.labels);
        (logits, loss)
    }

    /// The loss of `logits` on `batch` (for [`Objective::Hint`], which needs features,
    /// use [`Objective::forward_loss`]; here it falls back to cross-entropy).
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

//! [`Distiller`]: the seed notebook's `Distiller(keras.Model)` without its optimizer. It pairs
//! what the frozen teacher says with a distillation method, and answers one question for a
//! training step: given the student and a batch, what are the student's logits and its loss?
//! The caller owns the optimizer (kd-train's loop, or the user's own).
//!
//! The teacher speaks in one of three ways:
//!
//! - its logits, computed live on every batch ([`Distiller::live`]): exact for any batch,
//!   augmented ones included (consistent teaching, Beyer et al. 2022);
//! - its logits, cached once per image of the training and validation sets
//!   ([`Distiller::cached`]): the same numbers as live on un-augmented images (the teacher is
//!   frozen) for one teacher pass in total instead of one per epoch;
//! - an intermediate feature, live ([`Distiller::fitnets`]): a FitNets hint (Romero et al.
//!   2015).
//!
//! The teacher always runs in inference mode under `no_grad`: no gradient reaches it and its
//! dropout is off, whether or not its parameters were frozen.

use kd_models::Model;
use tch::Tensor;

use crate::cache::LogitCache;
use crate::loss::{DistillLoss, FitNetsHint, LossParts};

/// Which split a batch comes from (it selects the cached teacher logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images.
    Train,
    /// The validation images.
    Validation,
}

/// One batch as the Distiller reads it.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'b> {
    /// Images `[b, c, h, w]`.
    pub images: &'b Tensor,
    /// Labels `[b]` (i64).
    pub labels: &'b Tensor,
    /// Each image's index in its dataset `[b]` (i64): the row of cached logits.
    pub indices: &'b Tensor,
}

/// Where the teacher's logits come from.
#[derive(Debug, Clone, Copy)]
enum TeacherLogits<'a> {
    Live(&'a Model),
    Cached {
        train: &'a LogitCache,
        val: &'a LogitCache,
    },
}

/// The distillation method and the teacher it learns from.
#[derive(Debug, Clone, Copy)]
enum Method<'a> {
    Logits {
        loss: &'a dyn DistillLoss,
        teacher: TeacherLogits<'a>,
    },
    Hint {
        hint: &'a FitNetsHint,
        teacher: &'a Model,
    },
}

/// A frozen teacher's signal and the loss that teaches a student with it.
#[derive(Debug, Clone, Copy)]
pub struct Distiller<'a> {
    method: Method<'a>,
}

impl<'a> Distiller<'a> {
    /// A logit loss against `teacher` run on every batch.
    pub fn live(teacher: &'a Model, loss: &'a dyn DistillLoss) -> Self {
        Self {
            method: Method::Logits {
                loss,
                teacher: TeacherLogits::Live(teacher),
            },
        }
    }

    /// A logit loss against the teacher's logits cached for the training (`train`) and
    /// validation (`val`) images, gathered by each batch's dataset indices.
    pub fn cached(train: &'a LogitCache, val: &'a LogitCache, loss: &'a dyn DistillLoss) -> Self {
        Self {
            method: Method::Logits {
                loss,
                teacher: TeacherLogits::Cached { train, val },
            },
        }
    }

    /// A FitNets hint from `teacher`'s hinted layer to the student's.
    pub fn fitnets(teacher: &'a Model, hint: &'a FitNetsHint) -> Self {
        Self {
            method: Method::Hint { hint, teacher },
        }
    }

    /// Tells schedule-dependent losses (DKD's warm-up) that `epoch` (from 1) begins.
    pub fn begin_epoch(&self, epoch: usize) {
        if let Method::Logits { loss, .. } = self.method {
            loss.begin_epoch(epoch);
        }
    }

    /// The teacher's logits for `batch` from `split` (`None` for a FitNets hint, which
    /// needs the teacher's feature instead): live, or gathered from the cache.
    pub fn teacher_logits(&self, batch: Examples, split: Split) -> Option<Tensor> {
        let Method::Logits { teacher, .. } = self.method else {
            return None;
        };
        let device = batch.images.device();
        Some(match (teacher, split) {
            (TeacherLogits::Cached { train, .. }, Split::Train) => {
                train.gather(batch.indices, device)
            }
            (TeacherLogits::Cached { val, .. }, Split::Validation) => {
                val.gather(batch.indices, device)
            }
            (TeacherLogits::Live(model), _) => {
                tch::no_grad(|| model.forward_t(batch.images, false))
            }
        })
    }

    /// Runs `student` on `batch` (training behaviour if `train`) and returns its logits and
    /// the distillation loss.
    pub fn step(
        &self,
        student: &Model,
        batch: Examples,
        split: Split,
        train: bool,
    ) -> (Tensor, LossParts) {
        match self.method {
            Method::Logits { loss, .. } => {
                let logits = student.forward_t(batch.images, train);
                let teacher = self
                    .teacher_logits(batch, split)
                    .expect("a logit method has teacher logits");
                let parts = loss.loss(&logits, &teacher, batch.labels);
                (logits, parts)
            }
            Method::Hint { hint, teacher } => {
                let c = hint.config();
                let checked = "hinted layers are checked to exist when the hint is built";
                // The teacher stops at its hinted layer; the student also needs its logits.
                let t_feature =
                    tch::no_grad(|| teacher.forward_feature(batch.images, false, &c.teacher_layer))
                        .expect(checked);
                let (logits, s_feature) = student
                    .forward_features(batch.images, train, &[&c.student_layer])
                    .expect(checked);
                let parts = hint.loss(&logits, &s_feature[0], &t_feature, batch.labels);
                (logits, parts)
            }
        }
    }

    /// The loss of given student logits against given teacher logits (a logit method; a
    /// FitNets hint has no logit loss and gives `None`).
    pub fn loss_with(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        labels: &Tensor,
    ) -> Option<LossParts> {
        match self.method {
            Method::Logits { loss, .. } => Some(loss.loss(student, teacher, labels)),
            Method::Hint { .. } => None,
        }
    }
}

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
//! - an intermediate feature, live ([`Distiller::features`]): a FitNets hint (Romero et al.
//!   2015), attention transfer, relational KD or CRD ([`crate::loss::feature`]).
//!
//! The teacher always runs in inference mode under `no_grad`: no gradient reaches it and its
//! dropout is off, whether or not its parameters were frozen.
//!
//! With [`Distiller::with_mixup`], every training batch is mixed ([`crate::mixup`]) before
//! teacher and student see it: both see the same mixed images, which needs a live teacher.

use kd_models::{Model, Network};
use tch::{Device, Tensor};

use crate::cache::LogitCache;
use crate::error::{CoreError, Result};
use crate::loss::{DistillLoss, FeatureLoss, LossParts};
use crate::mixup::mix;

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
#[derive(Clone, Copy)]
enum TeacherLogits<'a> {
    /// Any network run on every batch: a kd model, a TorchScript module, a user's module.
    Live(&'a dyn Network),
    Cached {
        train: &'a LogitCache,
        val: &'a LogitCache,
    },
}

impl std::fmt::Debug for TeacherLogits<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Live(_) => f.write_str("Live"),
            Self::Cached { train, val } => f
                .debug_struct("Cached")
                .field("train", train)
                .field("val", val)
                .finish(),
        }
    }
}

/// Whether distillation steps on `device` launch only device work (what a CUDA graph can
/// capture): no `mixup` (it draws its mixing weights on the host), a capturable logit loss
/// ([`DistillLoss::capturable`]; `None` for a feature loss, which answers for itself), and
/// the cached training logits, if any, kept on `device` (`cached_on`), not gathered from
/// host memory. A built
/// [`Distiller`] answers it with [`Distiller::capturable_on`]; a run asks it of its config
/// before anything trains, with the logits' place from [`LogitCache::placement`].
pub fn steps_capturable(
    loss: Option<&dyn DistillLoss>,
    cached_on: Option<Device>,
    mixup: bool,
    device: Device,
) -> bool {
    let loss = loss.is_none_or(|l| l.capturable());
    let cache = cached_on.is_none_or(|d| d == device);
    !mixup && loss && cache
}

/// The distillation method and the teacher it learns from.
#[derive(Debug, Clone, Copy)]
enum Method<'a> {
    Logits {
        loss: &'a dyn DistillLoss,
        teacher: TeacherLogits<'a>,
    },
    Hint {
        hint: &'a dyn FeatureLoss,
        teacher: &'a Model,
    },
}

/// A frozen teacher's signal and the loss that teaches a student with it.
#[derive(Debug, Clone, Copy)]
pub struct Distiller<'a> {
    method: Method<'a>,
    /// mixup's `α` for training batches (`None`: no mixup).
    mixup: Option<f64>,
}

impl<'a> Distiller<'a> {
    /// Whether a training step with this distiller on `device` launches only device work
    /// (what a CUDA graph can capture): see [`steps_capturable`].
    pub fn capturable_on(&self, device: Device) -> bool {
        let (loss, cached_on) = match self.method {
            Method::Logits {
                loss,
                teacher: TeacherLogits::Cached { train, .. },
            } => (Some(loss), Some(train.logits().device())),
            Method::Logits { loss, .. } => (Some(loss), None),
            Method::Hint { hint, .. } if !hint.capturable() => return false,
            Method::Hint { .. } => (None, None),
        };
        steps_capturable(loss, cached_on, self.mixup.is_some(), device)
    }

    /// A logit loss against `teacher` run on every batch (in inference mode, without
    /// gradients): a kd [`Model`] (its own or a TorchScript module's), or any [`Network`].
    pub fn live(teacher: &'a dyn Network, loss: &'a dyn DistillLoss) -> Self {
        Self {
            method: Method::Logits {
                loss,
                teacher: TeacherLogits::Live(teacher),
            },
            mixup: None,
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
            mixup: None,
        }
    }

    /// A feature loss (FitNets, attention transfer, RKD, CRD) between `teacher`'s hinted layer
    /// and the student's.
    pub fn features(teacher: &'a Model, hint: &'a dyn FeatureLoss) -> Self {
        Self {
            method: Method::Hint { hint, teacher },
            mixup: None,
        }
    }

    /// Mixes every training batch with mixup at `Beta(alpha, alpha)` (`alpha` in `(0, 1]`; 0
    /// leaves mixup off), teacher and student seeing the same mixed images. Cached logits
    /// belong to unmixed images, so a cached Distiller refuses; the error names `key`.
    pub fn with_mixup(mut self, alpha: f64, key: &str) -> Result<Self> {
        let invalid = |expected: &str| CoreError::InvalidConfig {
            key: key.into(),
            expected: expected.into(),
            got: alpha.to_string(),
        };
        if !(0.0..=1.0).contains(&alpha) {
            return Err(invalid("a value in [0, 1]"));
        }
        if alpha > 0.0 {
            if let Method::Logits {
                teacher: TeacherLogits::Cached { .. },
                ..
            } = self.method
            {
                return Err(invalid(
                    "0 with cached teacher logits (they belong to unmixed images): mixup needs the teacher live",
                ));
            }
            self.mixup = Some(alpha);
        }
        Ok(self)
    }

    /// Why the students of a fused population cannot share this distiller's batches, if
    /// they cannot: a feature loss needs each student's own feature, and mixup draws its
    /// mixing per student. A logit loss against cached or live logits can.
    pub fn unfusable(&self) -> Option<&'static str> {
        match (self.method, self.mixup) {
            (Method::Hint { .. }, _) => Some("a feature loss (fitnets, at, rkd, crd, simkd)"),
            (_, Some(_)) => Some("mixup"),
            _ => None,
        }
    }

    /// Whether `other` learns from the very same teacher signal (the same cached logits, or
    /// the same live model): then one batch's teacher logits serve both.
    pub fn same_teacher(&self, other: &Distiller<'_>) -> bool {
        let (Method::Logits { teacher: a, .. }, Method::Logits { teacher: b, .. }) =
            (self.method, other.method)
        else {
            return false;
        };
        match (a, b) {
            (TeacherLogits::Live(x), TeacherLogits::Live(y)) => std::ptr::addr_eq(x, y),
            (
                TeacherLogits::Cached { train, val },
                TeacherLogits::Cached {
                    train: train_b,
                    val: val_b,
                },
            ) => std::ptr::eq(train, train_b) && std::ptr::eq(val, val_b),
            _ => false,
        }
    }

    /// Tells schedule-dependent losses (DKD's warm-up) that `epoch` (from 1) begins.
    pub fn begin_epoch(&self, epoch: usize) {
        if let Method::Logits { loss, .. } = self.method {
            loss.begin_epoch(epoch);
        }
    }

    /// The teacher's logits for `batch` from `split` (`None` for a feature loss, which
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
    /// the distillation loss; a training batch is mixed first if mixup is on.
    pub fn step(
        &self,
        student: &dyn Network,
        batch: Examples,
        split: Split,
        train: bool,
    ) -> (Tensor, LossParts) {
        let mixed = self
            .mixup
            .filter(|_| train)
            .map(|alpha| mix(batch.images, batch.labels, alpha));
        let batch = match &mixed {
            Some(m) => Examples {
                images: &m.images,
                ..batch
            },
            None => batch,
        };
        let (logits, loss_for) = self.forward(student, batch, split, train);
        let parts = match &mixed {
            None => loss_for(batch.labels),
            Some(m) => blend(
                loss_for(batch.labels),
                loss_for(&m.partner_labels),
                &m.lambda,
            ),
        };
        (logits, parts)
    }

    /// The student's logits on `batch` and the loss as a function of the labels (mixup asks
    /// for two).
    fn forward<'s>(
        &'s self,
        student: &dyn Network,
        batch: Examples,
        split: Split,
        train: bool,
    ) -> (Tensor, LossForLabels<'s>) {
        match self.method {
            Method::Logits { loss, .. } => {
                let logits = student.forward_t(batch.images, train);
                let teacher = self
                    .teacher_logits(batch, split)
                    .expect("a logit method has teacher logits");
                let s = logits.shallow_clone();
                (logits, Box::new(move |y| loss.loss(&s, &teacher, y)))
            }
            Method::Hint { hint, teacher } => {
                let [student_layer, teacher_layer] = hint.layers();
                let checked = "hinted layers are checked to exist when the hint is built";
                // The teacher stops at its hinted layer; the student also needs its logits.
                let t_feature =
                    tch::no_grad(|| teacher.forward_feature(batch.images, false, teacher_layer))
                        .expect(checked);
                let (logits, s_feature) = student
                    .forward_features(batch.images, train, &[student_layer])
                    .expect(checked);
                let (s, f) = (logits.shallow_clone(), s_feature[0].shallow_clone());
                let rows = (split == Split::Train).then(|| batch.indices.shallow_clone());
                let loss = move |y: &Tensor| hint.loss_on(&s, &f, &t_feature, y, rows.as_ref());
                (logits, Box::new(loss))
            }
        }
    }

    /// The loss of given student logits against given teacher logits (a logit method; a
    /// feature loss has no logit loss and gives `None`).
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

/// A batch's loss as a function of its labels (a mixed batch asks for two).
type LossForLabels<'s> = Box<dyn Fn(&Tensor) -> LossParts + 's>;

/// `λ·a + (1 − λ)·b`, term by term: the loss of a mixed batch from its losses against each
/// image's own label and its partner's.
fn blend(a: LossParts, b: LossParts, lambda: &Tensor) -> LossParts {
    let mixed = |x: &Tensor, y: &Tensor| x * lambda + y * (1.0 - lambda);
    LossParts {
        total: mixed(&a.total, &b.total),
        parts: a
            .parts
            .iter()
            .zip(&b.parts)
            .map(|((name, x), (_, y))| (*name, mixed(x, y)))
            .collect(),
    }
}

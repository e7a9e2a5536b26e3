//! Multi-level logit distillation (Jin, Wang & Lin 2023, "Multi-Level Logit Distillation",
//! CVPR): the student's predictions are aligned with the teacher's at three levels, each at
//! several temperatures ("prediction augmentation"):
//!
//! ```text
//! P_s = softmax(s / tau), P_t = softmax(t / tau)                  # [b, k], tau in temperatures
//! instance = sum_tau tau^2 * mean_i KL(P_t[i] || P_s[i])          # each image's distribution
//! batch    = sum_tau |P_t P_t^T - P_s P_s^T|_F^2 / b              # how the images relate [b, b]
//! class    = sum_tau |P_t^T P_t - P_s^T P_s|_F^2 / k              # how the classes relate [k, k]
//! ce_weight * CE(s, y) + kd_weight * (instance + batch + class)
//! ```
//!
//! The temperatures default to the authors' code's `{2, 3, 4, 5, 6}`. With `standardize`
//! the instance level first z-scores both models' logits per row (logit standardization,
//! Sun et al., CVPR 2024, [`super::lskd::standardize`]), as the standardization authors'
//! MLKD code does; the batch and class levels keep the raw logits there too.
//!
//! Where kd differs from the authors' code (Jin-Ying/Multi-Level-Logit-Distillation):
//! - kd distills the one (weakly augmented) view of each image the student trains on. The
//!   code also runs both models on a second, strongly augmented (AutoAugment-style) view and
//!   adds its cross-entropy and instance terms: that is an input transform of the training
//!   batches, not part of the loss, and kd does not implement it.
//! - The code multiplies each batch-averaged instance and batch term by the mean of a
//!   confidence mask (the rows on one side of the median of the teacher's confidence: a
//!   factor of about 1/2) and each class term by the mean of a class-confidence mask
//!   (about 1/2 too); kd leaves such near-constant factors to `kd_weight`.
//!
//! Every row counts in the KD levels (the batch and class levels relate the rows of a batch
//! to each other), unlabeled rows of a transfer set included; the label term counts only
//! labelled rows ([`super::label_term`]).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::lskd::standardize;
use super::{check_nonnegative, check_two_classes, kl_rows, label_term, DistillLoss, LossParts};
use crate::error::{CoreError, Result};

/// Hyperparameters of [`Mlkd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlkdConfig {
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the three alignment levels together.
    pub kd_weight: f64,
    /// The temperatures every level is computed at (summed).
    pub temperatures: Vec<f64>,
    /// Standardize the logits of the instance level (logit-standardized MLKD).
    pub standardize: bool,
}

impl Default for MlkdConfig {
    /// The authors' CIFAR-100 setting: weights 1 and 1, temperatures 2 to 6, raw logits.
    fn default() -> Self {
        Self {
            ce_weight: 1.0,
            kd_weight: 1.0,
            temperatures: vec![2.0, 3.0, 4.0, 5.0, 6.0],
            standardize: false,
        }
    }
}

impl MlkdConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<Mlkd> {
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "kd_weight", self.kd_weight)?;
        if self.temperatures.is_empty() {
            return Err(CoreError::InvalidConfig {
                key: format!("{key}.temperatures"),
                expected: "at least one temperature".into(),
                got: "[]".into(),
            });
        }
        if let Some(t) = self
            .temperatures
            .iter()
            .find(|t| !(**t > 0.0 && t.is_finite()))
        {
            return Err(CoreError::InvalidConfig {
                key: format!("{key}.temperatures"),
                expected: "finite values > 0".into(),
                got: t.to_string(),
            });
        }
        Ok(Mlkd {
            config: self.clone(),
        })
    }

    /// The temperature reports quote for it: the middle of its temperatures (4 by
    /// default).
    pub fn central_temperature(&self) -> f64 {
        let mut sorted = self.temperatures.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(1.0)
    }
}

/// `|a - b|_F^2 / n`, the code's "consistency" between two Gram matrices.
fn gram_gap(a: &Tensor, b: &Tensor, n: i64) -> Tensor {
    (a - b).square().sum(Kind::Float) / n as f64
}

/// Multi-level logit distillation (see the module documentation).
#[derive(Debug, Clone)]
pub struct Mlkd {
    config: MlkdConfig,
}

impl DistillLoss for Mlkd {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let MlkdConfig {
            ce_weight,
            kd_weight,
            ref temperatures,
            standardize: stand,
        } = self.config;
        let [b, k] = [student.size()[0], student.size()[1]];
        let (s_inst, t_inst) = match stand {
            true => (standardize(student), standardize(teacher)),
            false => (student.shallow_clone(), teacher.shallow_clone()),
        };
        let zero = || Tensor::zeros([], (Kind::Float, student.device()));
        let (mut instance, mut batch, mut class) = (zero(), zero(), zero());
        for &t in temperatures {
            let kl = kl_rows(&(&t_inst / t), &(&s_inst / t)).mean(Kind::Float);
            instance += kl * (t * t);
            let p_s = (student / t).softmax(-1, Kind::Float);
            let p_t = (teacher / t).softmax(-1, Kind::Float);
            batch += gram_gap(&p_t.mm(&p_t.tr()), &p_s.mm(&p_s.tr()), b);
            class += gram_gap(&p_t.tr().mm(&p_t), &p_s.tr().mm(&p_s), k);
        }
        let hard = label_term(student, labels);
        LossParts {
            total: &hard * ce_weight + (&instance + &batch + &class) * kd_weight,
            parts: vec![
                ("student_loss", hard),
                ("instance_loss", instance),
                ("batch_loss", batch),
                ("class_loss", class),
            ],
        }
    }

    fn check_classes(&self, classes: usize) -> Result<()> {
        match self.config.standardize {
            true => check_two_classes(classes, "standardize logits"),
            false => Ok(()),
        }
    }
}

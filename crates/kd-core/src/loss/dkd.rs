//! Decoupled knowledge distillation (Zhao et al. 2022, "Decoupled Knowledge Distillation",
//! CVPR). The KD loss splits into a target-class term (TCKD: the binary distribution
//! `[p_target, 1 - p_target]`) and a non-target term (NCKD: the distribution over the other
//! classes, renormalized), weighted independently:
//!
//! ```text
//! ce_weight * CE(s, y) + warmup * (alpha * TCKD + beta * NCKD)
//! TCKD = T^2 * KL([pt_y, 1 - pt_y] || [ps_y, 1 - ps_y])          # batch mean
//! NCKD = T^2 * KL(softmax(t/T) over k != y || softmax(s/T) over k != y)
//! warmup = min(epoch / warmup_epochs, 1)                          # epoch counts from 1
//! ```
//!
//! An unlabeled row (label `-1`, a transfer-set image) has no `CE` term, and its target and
//! non-target classes are split at the teacher's top class.
//!
//! The authors' code (mdistiller) masks the target logit with `-1000` and takes `log` of
//! probabilities; here every log-probability comes from a log-sum-exp, which gives the same
//! values and stays finite when a probability underflows (logits of ±50 at low `T`).

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{
    check_nonnegative, check_temperature, check_two_classes, label_term, DistillLoss, LossParts,
};
use crate::error::Result;

/// Hyperparameters of [`Dkd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkdConfig {
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of TCKD.
    pub alpha: f64,
    /// Weight of NCKD.
    pub beta: f64,
    /// Softmax temperature of both terms.
    pub temperature: f64,
    /// Epochs over which the distillation terms ramp up linearly (0: no warm-up).
    pub warmup_epochs: usize,
}

impl Default for DkdConfig {
    /// The paper's CIFAR-100 setting: CE 1, alpha 1, beta 8, T 4, 20 warm-up epochs.
    fn default() -> Self {
        Self {
            ce_weight: 1.0,
            alpha: 1.0,
            beta: 8.0,
            temperature: 4.0,
            warmup_epochs: 20,
        }
    }
}

impl DkdConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<Dkd> {
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "alpha", self.alpha)?;
        check_nonnegative(key, "beta", self.beta)?;
        check_temperature(key, self.temperature)?;
        Ok(Dkd {
            config: self.clone(),
            epoch: AtomicUsize::new(1),
        })
    }
}

/// Decoupled KD (see the module documentation).
#[derive(Debug)]
pub struct Dkd {
    config: DkdConfig,
    epoch: AtomicUsize,
}

/// Log-probabilities `[log p_target, log p_other]` `[b, 2]` and the log-softmax over the
/// non-target classes `[b, k]` (`-inf` at the target) of logits `x` (already divided by T).
fn decoupled_log_probs(x: &Tensor, target: &Tensor) -> (Tensor, Tensor) {
    let lse = x.logsumexp(-1, true);
    let masked = x.masked_fill(target, f64::NEG_INFINITY);
    let lse_other = masked.logsumexp(-1, true);
    let x_target = x.masked_select(target).reshape([-1, 1]);
    let binary = Tensor::cat(&[&x_target - &lse, &lse_other - &lse], 1);
    (binary, masked - lse_other)
}

impl Dkd {
    /// The warm-up factor at the current epoch.
    pub fn warmup(&self) -> f64 {
        let w = self.config.warmup_epochs;
        if w == 0 {
            1.0
        } else {
            (self.epoch.load(Ordering::Relaxed) as f64 / w as f64).min(1.0)
        }
    }
}

impl DistillLoss for Dkd {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let c = &self.config;
        let t = c.temperature;
        let classes = student.size()[1];
        // A row without a label splits at the teacher's top class instead.
        let split_at = labels.where_self(&labels.ge(0), &teacher.argmax(-1, false));
        let target = split_at.one_hot(classes).to_kind(Kind::Bool);
        let (s_bin, s_other) = decoupled_log_probs(&(student / t), &target);
        let (t_bin, t_other) = decoupled_log_probs(&(teacher / t), &target);
        let b = student.size()[0] as f64;
        let tckd = (t_bin.exp() * (&t_bin - &s_bin)).sum(Kind::Float) * (t * t / b);
        // 0 * (-inf - -inf) at the target: the difference is zeroed there first.
        let diff = (&t_other - &s_other).masked_fill(&target, 0.0);
        let nckd = (t_other.exp() * diff).sum(Kind::Float) * (t * t / b);
        let hard = label_term(student, labels);
        let warm = self.warmup();
        let total = &hard * c.ce_weight + (&tckd * c.alpha + &nckd * c.beta) * warm;
        LossParts {
            total,
            parts: vec![("student_loss", hard), ("tckd", tckd), ("nckd", nckd)],
        }
    }

    /// Not capturable: the target logit is picked with `masked_select` (a host sync on
    /// CUDA) and the warm-up factor is a host value that changes by epoch.
    fn capturable(&self) -> bool {
        false
    }

    fn begin_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    fn check_classes(&self, classes: usize) -> Result<()> {
        check_two_classes(classes, "split target and non-target terms")
    }
}

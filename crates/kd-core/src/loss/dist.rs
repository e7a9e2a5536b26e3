//! DIST (Huang, You, Wang, Qian & Xu 2022, "Knowledge Distillation from A Stronger
//! Teacher", NeurIPS): instead of matching the teacher's probabilities exactly (KL), the
//! student matches their *relations*, measured by Pearson correlation, which is invariant to
//! the scale and shift a weaker student cannot reproduce:
//!
//! ```text
//! P_s = softmax(s / T), P_t = softmax(t / T)                       # [b, k]
//! d(u, v) = 1 - pearson(u, v) = 1 - cos(u - mean u, v - mean v)    # cos with eps 1e-8 in its denominator
//! inter = mean_i d(P_s[i, :], P_t[i, :])                           # each image's ranking of the classes
//! intra = mean_j d(P_s[:, j], P_t[:, j])                           # each class's ranking of the batch
//! ce_weight * CE(s, y) + beta * T^2 * inter + gamma * T^2 * intra
//! ```
//!
//! As the authors' code (hunto/DIST_KD, `losses/dist_kd.py`): the cosine's denominator is
//! `|u| |v| + 1e-8`, and `T^2` scales both relation terms. The intra-class term relates the
//! rows of a batch to each other, so every row of the batch counts in it, unlabeled rows of a
//! transfer set included; the label term counts only labelled rows
//! ([`super::label_term`]).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{check_nonnegative, check_temperature, label_term, DistillLoss, LossParts};
use crate::error::Result;

/// Hyperparameters of [`Dist`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistConfig {
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the inter-class relation (per image, across classes).
    pub beta: f64,
    /// Weight of the intra-class relation (per class, across the batch).
    pub gamma: f64,
    /// Softmax temperature of both relations.
    pub temperature: f64,
}

impl Default for DistConfig {
    /// The authors' CIFAR-100 setting (`dist_t4`): CE weight 1, `beta = gamma = 2`, `T = 4`.
    fn default() -> Self {
        Self {
            ce_weight: 1.0,
            beta: 2.0,
            gamma: 2.0,
            temperature: 4.0,
        }
    }
}

impl DistConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<Dist> {
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "beta", self.beta)?;
        check_nonnegative(key, "gamma", self.gamma)?;
        check_temperature(key, self.temperature)?;
        Ok(Dist {
            config: self.clone(),
        })
    }
}

/// The Pearson correlation of each row of `a` with the same row of `b` (`[n, m]` -> `[n]`).
pub fn pearson_rows(a: &Tensor, b: &Tensor) -> Tensor {
    let a = a - a.mean_dim(1, true, Kind::Float);
    let b = b - b.mean_dim(1, true, Kind::Float);
    let norms = a.norm_scalaropt_dim(2, [1], false) * b.norm_scalaropt_dim(2, [1], false);
    (&a * &b).sum_dim_intlist(1, false, Kind::Float) / (norms + 1e-8)
}

/// DIST (see the module documentation).
#[derive(Debug, Clone)]
pub struct Dist {
    config: DistConfig,
}

impl DistillLoss for Dist {
    fn loss(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        let DistConfig {
            ce_weight,
            beta,
            gamma,
            temperature: t,
        } = self.config;
        let hard = label_term(student, labels);
        let p_s = (student / t).softmax(-1, Kind::Float);
        let p_t = (teacher / t).softmax(-1, Kind::Float);
        let inter = (1.0 - pearson_rows(&p_s, &p_t).mean(Kind::Float)) * (t * t);
        let intra = (1.0 - pearson_rows(&p_s.tr(), &p_t.tr()).mean(Kind::Float)) * (t * t);
        LossParts {
            total: &hard * ce_weight + &inter * beta + &intra * gamma,
            parts: vec![
                ("student_loss", hard),
                ("inter_class_loss", inter),
                ("intra_class_loss", intra),
            ],
        }
    }
}

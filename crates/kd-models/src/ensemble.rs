//! An ensemble of frozen teachers as one teacher: each member's float32 logits of the same
//! images, combined with normalized weights `w_i` —
//!
//! - in probability space (the default): `log(sum_i w_i softmax(z_i))`, the log of the
//!   members' averaged predictive distribution. This is how Hinton et al. (2015, "Distilling
//!   the Knowledge in a Neural Network", section 1) describe an ensemble's prediction — the
//!   arithmetic mean of the members' distributions — and what the ensemble's accuracy
//!   measures. A distillation temperature `T` then softens the averaged distribution
//!   (`p^(1/T)` renormalized), not each member's;
//! - in logit space: `sum_i w_i z_i`, the normalized geometric mean of the members'
//!   distributions, which commutes with the temperature (softening the average is averaging
//!   the softened members); many multi-teacher codebases average logits this way.

use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use crate::error::{invalid, Result};
use crate::model::Model;

/// How an ensemble combines its members' logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// `log(sum_i w_i softmax(z_i))`.
    #[default]
    Probability,
    /// `sum_i w_i z_i`.
    Logits,
}

/// Frozen members and their normalized weights.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<(Model, f64)>,
    combine: Combine,
}

impl Ensemble {
    /// The ensemble of `members` with their weights (finite, >= 0, summing to more than
    /// 0; normalized to sum to 1); an error names the weights otherwise.
    pub fn new(members: Vec<(Model, f64)>, combine: Combine) -> Result<Self> {
        let sum: f64 = members.iter().map(|(_, w)| w).sum();
        let bad = members.iter().any(|(_, w)| !(w.is_finite() && *w >= 0.0));
        if members.is_empty() || bad || sum.is_nan() || sum <= 0.0 {
            let weights: Vec<f64> = members.iter().map(|(_, w)| *w).collect();
            return Err(invalid(
                "teacher.ensemble.weight",
                "finite weights >= 0 of at least one member, summing to more than 0",
                format!("{weights:?}"),
            ));
        }
        let members = members.into_iter().map(|(m, w)| (m, w / sum)).collect();
        Ok(Self { members, combine })
    }

    /// The members with their normalized weights.
    pub fn members(&self) -> &[(Model, f64)] {
        &self.members
    }

    /// The combined logits of `images` (float32), each member in its own precision. In
    /// probability space as `logsumexp_i(log w_i + log_softmax(z_i))`, which stays finite
    /// where a member's probabilities underflow.
    pub fn combined(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let parts: Vec<Tensor> = self
                .members
                .iter()
                .map(|(m, w)| {
                    let z = m.forward_t(images, false).to_kind(Kind::Float);
                    match self.combine {
                        Combine::Probability => z.log_softmax(-1, Kind::Float) + w.ln(),
                        Combine::Logits => z * *w,
                    }
                })
                .collect();
            let stacked = Tensor::stack(&parts, 0);
            match self.combine {
                Combine::Probability => stacked.logsumexp([0i64].as_slice(), false),
                Combine::Logits => stacked.sum_dim_intlist(0, false, Kind::Float),
            }
        })
    }
}

impl ModuleT for Ensemble {
    fn forward_t(&self, images: &Tensor, _train: bool) -> Tensor {
        self.combined(images)
    }
}

//! Relational knowledge distillation (Park, Kim, Lu & Cho 2019, "Relational Knowledge
//! Distillation", CVPR): the student matches how the teacher's embeddings of a batch relate
//! to each other — their pairwise distances and the angles of their triplets — not the
//! embeddings themselves, so the two may differ in size:
//!
//! ```text
//! e = the hinted layer's output, global-average-pooled to [b, c] if it is a feature map
//! d(e)_ij = |e_i - e_j|_2 / mean of the nonzero |e_k - e_l|_2      # the diagonal is 0
//! angle(e)_ijk = <normalize(e_j - e_i), normalize(e_k - e_i)>      # all b^3 triplets
//! ce_weight * CE(s, y) + distance_weight * smooth_l1(d(e_s), d(e_t))
//!                      + angle_weight * smooth_l1(angle(e_s), angle(e_t))
//! ```
//!
//! As the authors' code and mdistiller's `RKD`: distances from `|x|^2 + |y|^2 - 2 <x, y>`
//! clamped at 1e-12 before the square root, `F.normalize` with eps 1e-12, PyTorch's
//! `smooth_l1_loss` (beta 1, mean), weights 25 and 50. The embedding is the global average of
//! the hinted feature map (mdistiller feeds its models' pooled penultimate feature). Every
//! row of the batch takes part in the relations, unlabeled rows of a transfer set included.
//! The normalizing mean selects the nonzero distances (a data-dependent shape), so an RKD step
//! cannot be captured in a CUDA graph. A batch of more than [`RELATION_BLOCK`] rows (a
//! validation batch) is related in blocks of that many.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use super::feature::{check_layer, normalize, FeatureLoss};
use super::{check_nonnegative, label_term, LossParts};
use crate::error::Result;

/// Hyperparameters of [`Rkd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RkdConfig {
    /// The student layer whose output is its embedding.
    pub student_layer: String,
    /// The teacher layer whose output is the target embedding.
    pub teacher_layer: String,
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the distance term.
    pub distance_weight: f64,
    /// Weight of the angle term.
    pub angle_weight: f64,
}

impl Default for RkdConfig {
    /// The FitNets layers of the seed's models; the paper's weights (CE 1, distance 25,
    /// angle 50).
    fn default() -> Self {
        Self {
            student_layer: "features.13".into(),
            teacher_layer: "features.9".into(),
            ce_weight: 1.0,
            distance_weight: 25.0,
            angle_weight: 50.0,
        }
    }
}

impl RkdConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<Rkd> {
        check_layer(key, "student_layer", &self.student_layer)?;
        check_layer(key, "teacher_layer", &self.teacher_layer)?;
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "distance_weight", self.distance_weight)?;
        check_nonnegative(key, "angle_weight", self.angle_weight)?;
        Ok(Rkd {
            config: self.clone(),
        })
    }
}

/// `[b, c]` embeddings of a layer's output: a feature map `[b, c, h, w]` averaged over its
/// positions, anything else flattened per row.
pub fn embedding(feature: &Tensor) -> Tensor {
    let x = feature.to_kind(Kind::Float);
    match feature.dim() {
        4 => x.mean_dim([2i64, 3].as_slice(), false, Kind::Float),
        _ => x.reshape([feature.size()[0], -1]),
    }
}

/// Pairwise distances `[b, b]` divided by the mean of the nonzero ones; diagonal 0.
pub fn normalized_distances(e: &Tensor) -> Tensor {
    let b = e.size()[0];
    let square = e.square().sum_dim_intlist(1, false, Kind::Float);
    let d = (square.unsqueeze(1) + square.unsqueeze(0) - e.mm(&e.tr()) * 2.0)
        .clamp_min(1e-12)
        .sqrt();
    let off_diagonal: Tensor = 1.0 - Tensor::eye(b, (Kind::Float, e.device()));
    let d: Tensor = d * off_diagonal;
    let mean = d.masked_select(&d.gt(0.0)).mean(Kind::Float);
    d / mean
}

/// The cosines `[b * b * b]` of the angles between `e_j - e_i` and `e_k - e_i`, at every `i`.
pub fn triplet_angles(e: &Tensor) -> Tensor {
    let diff = e.unsqueeze(0) - e.unsqueeze(1);
    let unit = normalize(&diff, 2);
    unit.bmm(&unit.transpose(1, 2)).reshape([-1])
}

/// Rows related at once: the angle term of `b` rows takes `b^3` values, so a larger batch
/// (kd's validation batches hold 1,000 images) is related in consecutive blocks of this
/// many rows, the terms averaged over the blocks by their size. Training batches up to
/// this size are related whole, as the paper does.
pub const RELATION_BLOCK: i64 = 256;

/// The distance and angle terms between embeddings `s` and `t`, block by block.
fn relations(s: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
    let b = s.size()[0];
    let smooth = |x: Tensor, y: Tensor| x.smooth_l1_loss(&y, Reduction::Mean, 1.0);
    let mut terms = Vec::new();
    for start in (0..b).step_by(RELATION_BLOCK as usize) {
        let n = RELATION_BLOCK.min(b - start);
        let (s, t) = (s.narrow(0, start, n), t.narrow(0, start, n));
        let distance = smooth(normalized_distances(&s), normalized_distances(&t));
        let angle = smooth(triplet_angles(&s), triplet_angles(&t));
        terms.push((
            distance * (n as f64 / b as f64),
            angle * (n as f64 / b as f64),
        ));
    }
    let (distances, angles): (Vec<Tensor>, Vec<Tensor>) = terms.into_iter().unzip();
    (
        Tensor::stack(&distances, 0).sum(Kind::Float),
        Tensor::stack(&angles, 0).sum(Kind::Float),
    )
}

/// Relational KD (see the module documentation).
#[derive(Debug, Clone)]
pub struct Rkd {
    config: RkdConfig,
}

impl FeatureLoss for Rkd {
    fn layers(&self) -> [&str; 2] {
        [&self.config.student_layer, &self.config.teacher_layer]
    }

    fn loss(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
    ) -> LossParts {
        let (s, t) = (embedding(student_feature), embedding(teacher_feature));
        let (distance, angle) = relations(&s, &t);
        let hard = label_term(student_logits, labels);
        let c = &self.config;
        LossParts {
            total: &hard * c.ce_weight + &distance * c.distance_weight + &angle * c.angle_weight,
            parts: vec![
                ("student_loss", hard),
                ("distance_loss", distance),
                ("angle_loss", angle),
            ],
        }
    }

    fn capturable(&self) -> bool {
        false
    }
}

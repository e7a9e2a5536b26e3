//! Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention:
//! Improving the Performance of Convolutional Neural Networks via Attention Transfer",
//! ICLR): the student matches the teacher's spatial attention map — where in the image a
//! layer's activations are strong — at a hinted layer:
//!
//! ```text
//! a(f) = normalize(mean_c |f_c|^p, over the h*w positions)        # [b, h*w], L2-normalized
//! ce_weight * CE(s, y) + at_weight * mean((a(f_s) - a(f_t))^2)
//! ```
//!
//! As the authors' code and mdistiller's `AT`: `p = 2`, the map is the channel mean of the
//! powered activations, L2-normalized per image (`F.normalize`, eps 1e-12), and the loss is
//! the mean squared difference over images and positions, weighted 1000 (the paper writes
//! `beta / 2` with `beta = 1000`; mdistiller weighs the mean by 1000, which kd follows). The
//! channel counts may differ (the map averages them away); when the spatial sizes differ
//! the teacher's feature is average-pooled to the student's first (`adaptive_avg_pool2d`), as
//! kd's FitNets does.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::feature::{check_layer, normalize, pooled_to_student, FeatureLoss};
use super::{check_nonnegative, label_term, LossParts};
use crate::error::{CoreError, Result};

/// Hyperparameters of [`AttentionTransfer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionConfig {
    /// The student layer whose output gives its attention map.
    pub student_layer: String,
    /// The teacher layer whose output gives the target map.
    pub teacher_layer: String,
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the attention term.
    pub at_weight: f64,
    /// The power of the activations' magnitude (2 in the paper).
    pub p: f64,
}

impl Default for AttentionConfig {
    /// The FitNets layers of the seed's models; mdistiller's weights (CE 1, AT 1000, p 2).
    fn default() -> Self {
        Self {
            student_layer: "features.13".into(),
            teacher_layer: "features.9".into(),
            ce_weight: 1.0,
            at_weight: 1000.0,
            p: 2.0,
        }
    }
}

impl AttentionConfig {
    /// Checks ranges and builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<AttentionTransfer> {
        check_layer(key, "student_layer", &self.student_layer)?;
        check_layer(key, "teacher_layer", &self.teacher_layer)?;
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "at_weight", self.at_weight)?;
        if !(self.p > 0.0 && self.p.is_finite()) {
            return Err(CoreError::InvalidConfig {
                key: format!("{key}.p"),
                expected: "a finite power > 0".into(),
                got: self.p.to_string(),
            });
        }
        Ok(AttentionTransfer {
            config: self.clone(),
        })
    }
}

/// Attention transfer (see the module documentation).
#[derive(Debug, Clone)]
pub struct AttentionTransfer {
    config: AttentionConfig,
}

impl AttentionTransfer {
    /// The L2-normalized attention map `[b, h*w]` of a feature `[b, c, h, w]`.
    pub fn map(&self, feature: &Tensor) -> Tensor {
        let b = feature.size()[0];
        let a = feature
            .to_kind(Kind::Float)
            .abs()
            .pow_tensor_scalar(self.config.p)
            .mean_dim(1, false, Kind::Float)
            .reshape([b, -1]);
        normalize(&a, 1)
    }
}

impl FeatureLoss for AttentionTransfer {
    fn layers(&self) -> [&str; 2] {
        [&self.config.student_layer, &self.config.teacher_layer]
    }

    /// The feature maps are `[b, c_s, h, w]` and `[b, c_t, h', w']`.
    fn loss(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
    ) -> LossParts {
        let target = pooled_to_student(teacher_feature, student_feature);
        let at = (self.map(student_feature) - self.map(&target))
            .square()
            .mean(Kind::Float);
        let hard = label_term(student_logits, labels);
        LossParts {
            total: &hard * self.config.ce_weight + &at * self.config.at_weight,
            parts: vec![("student_loss", hard), ("attention_loss", at)],
        }
    }
}

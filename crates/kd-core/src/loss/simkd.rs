//! SimKD (Chen et al. 2022, "Knowledge Distillation with the Reused Teacher Classifier",
//! CVPR): the student's feature, projected onto the teacher's channels, is pulled towards
//! the teacher's feature of the same stage with an L2 loss, and the student classifies with
//! the teacher's own frozen head ([`kd_models::simkd`]), so the loss has no label term by
//! default:
//!
//! ```text
//! feature_weight * F.mse_loss(projector(f_s), f_t) + ce_weight * CE(s, y)
//! ```
//!
//! The projector belongs to the student model (it is saved with it); this loss compares
//! its output (the layer [`kd_models::simkd::PROJECTOR_LAYER`]) with the teacher's feature.
//! The paper's training script sets the cross-entropy and KL weights to 0 and the feature
//! weight to 1, which are the defaults here. Every row counts, labelled or not.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::feature::{check_layer, pooled_to_student, FeatureLoss};
use super::{check_nonnegative, label_term, LossParts};
use crate::error::{CoreError, Result};

/// Hyperparameters of [`SimKd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimKdConfig {
    /// Name of the student layer the projector takes (its last feature map, e.g.
    /// `features.13`).
    pub student_layer: String,
    /// Name of the teacher layer the projector imitates; the teacher's layers after it are
    /// the head the student reuses (e.g. `features.19`).
    pub teacher_layer: String,
    /// The projector's bottleneck has the teacher's channels divided by this (the paper's 2).
    pub factor: usize,
    /// Weight of the feature's mean squared error.
    pub feature_weight: f64,
    /// Weight of the hard-label cross-entropy of the student's logits (through the
    /// teacher's head); 0 in the paper.
    pub ce_weight: f64,
}

impl Default for SimKdConfig {
    /// The paper's weights on the seed's models: the last ReLU of the student's last
    /// block and of VGG19's last stage (both 2x2 on 32x32 inputs).
    fn default() -> Self {
        Self {
            student_layer: "features.33".into(),
            teacher_layer: "features.35".into(),
            factor: 2,
            feature_weight: 1.0,
            ce_weight: 0.0,
        }
    }
}

impl SimKdConfig {
    /// Checks ranges; `key` prefixes error messages.
    pub fn validate(&self, key: &str) -> Result<()> {
        check_nonnegative(key, "feature_weight", self.feature_weight)?;
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_layer(key, "student_layer", &self.student_layer)?;
        check_layer(key, "teacher_layer", &self.teacher_layer)?;
        if self.factor == 0 {
            return Err(CoreError::InvalidConfig {
                key: format!("{key}.factor"),
                expected: "at least 1".into(),
                got: "0".into(),
            });
        }
        Ok(())
    }

    /// Builds the loss; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<SimKd> {
        self.validate(key)?;
        Ok(SimKd {
            config: self.clone(),
        })
    }
}

/// The SimKD loss between the student's projected feature and the teacher's.
#[derive(Debug)]
pub struct SimKd {
    config: SimKdConfig,
}

impl FeatureLoss for SimKd {
    fn layers(&self) -> [&str; 2] {
        [
            kd_models::simkd::PROJECTOR_LAYER,
            &self.config.teacher_layer,
        ]
    }

    /// The projector's output is `[b, c_t, h, w]`, the teacher's feature `[b, c_t, h', w']`
    /// with `h' >= h` (pooled to `h x w`, a no-op where they are equal).
    fn loss(
        &self,
        student_logits: &Tensor,
        projected: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
    ) -> LossParts {
        let target = pooled_to_student(teacher_feature, projected);
        let feature = projected
            .mse_loss(&target, tch::Reduction::Mean)
            .to_kind(Kind::Float);
        let hard = label_term(student_logits, labels);
        LossParts {
            total: &feature * self.config.feature_weight + &hard * self.config.ce_weight,
            parts: vec![("student_loss", hard), ("feature_loss", feature)],
        }
    }
}

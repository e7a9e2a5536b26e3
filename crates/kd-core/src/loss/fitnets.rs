//! FitNets hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", ICLR): an
//! intermediate student feature, mapped by a learned regressor to the teacher's channel
//! count, is pulled towards an intermediate teacher feature with an L2 loss, next to the
//! usual cross-entropy:
//!
//! ```text
//! ce_weight * CE(s, y) + hint_weight * F.mse_loss(regressor(f_s), f_t)
//! ```
//!
//! The regressor is a 1x1 convolution (with bias), trained with the student. When the two
//! features differ in spatial size the teacher's is average-pooled to the student's
//! (`F.adaptive_avg_pool2d`). Unlike the logit losses this one needs the models' features,
//! so the teacher runs on every batch (no logit cache).

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::feature::{check_layer, pooled_to_student, FeatureLoss};
use super::{check_nonnegative, label_term, LossParts};
use crate::error::Result;

/// Hyperparameters of [`FitNetsHint`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitNetsConfig {
    /// Name of the student layer whose output is the hinted feature (e.g. `features.13`).
    pub student_layer: String,
    /// Name of the teacher layer whose output is the hint (e.g. `features.9`).
    pub teacher_layer: String,
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the hint's mean squared error.
    pub hint_weight: f64,
}

impl Default for FitNetsConfig {
    /// The seed's models: the student after its second block (`[64, 8, 8]` on 32x32
    /// inputs), VGG19 after its second stage (`[128, 8, 8]`); weights as mdistiller's
    /// FitNet (CE 1, feature 100).
    fn default() -> Self {
        Self {
            student_layer: "features.13".into(),
            teacher_layer: "features.9".into(),
            ce_weight: 1.0,
            hint_weight: 100.0,
        }
    }
}

impl FitNetsConfig {
    /// Checks ranges; `key` prefixes error messages.
    pub fn validate(&self, key: &str) -> Result<()> {
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "hint_weight", self.hint_weight)?;
        check_layer(key, "student_layer", &self.student_layer)?;
        check_layer(key, "teacher_layer", &self.teacher_layer)
    }

    /// Builds the hint with its regressor under `path` (put it in the student's variable
    /// store so that the student's optimizer trains it) for features of
    /// `student_channels` and `teacher_channels` channels.
    pub fn build(
        &self,
        key: &str,
        path: &nn::Path,
        student_channels: i64,
        teacher_channels: i64,
    ) -> Result<FitNetsHint> {
        self.validate(key)?;
        let regressor = nn::conv2d(
            path / "regressor",
            student_channels,
            teacher_channels,
            1,
            Default::default(),
        );
        Ok(FitNetsHint {
            config: self.clone(),
            regressor,
        })
    }
}

/// The FitNets loss with its trainable regressor.
#[derive(Debug)]
pub struct FitNetsHint {
    config: FitNetsConfig,
    regressor: nn::Conv2D,
}

impl FitNetsHint {
    /// The configuration (layer names, weights).
    pub fn config(&self) -> &FitNetsConfig {
        &self.config
    }
}

impl FeatureLoss for FitNetsHint {
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
        let hint = nn::Module::forward(&self.regressor, student_feature)
            .mse_loss(&target, tch::Reduction::Mean)
            .to_kind(Kind::Float);
        let hard = label_term(student_logits, labels);
        LossParts {
            total: &hard * self.config.ce_weight + &hint * self.config.hint_weight,
            parts: vec![("student_loss", hard), ("hint_loss", hint)],
        }
    }
}

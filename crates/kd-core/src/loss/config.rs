//! [`LossConfig`]: a distillation loss chosen by name, with its parameters, as a config's
//! `[distill]` section writes it:
//!
//! ```toml
//! [distill]
//! loss = "dkd"        # keras-kd (default: the seed's), hinton, dkd, lskd, dist, mlkd,
//!                     # and the feature losses fitnets, at, rkd, crd, simkd
//! beta = 8.0
//! ```
//!
//! Keys a loss does not have are errors naming the key and the loss's keys.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use tch::nn;

use super::{
    AttentionConfig, CrdConfig, DistConfig, DistillLoss, DkdConfig, FeatureLoss, FitNetsConfig,
    HintonKdConfig, KerasKdConfig, LogitStandardKdConfig, MlkdConfig, RkdConfig, SimKdConfig,
};
use crate::error::{CoreError, Result};

/// Which loss, with its parameters; serialized with the name under `loss`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "loss", rename_all = "kebab-case")]
pub enum LossConfig {
    /// The seed notebook's loss with Keras semantics ([`KerasKdConfig`]).
    KerasKd(KerasKdConfig),
    /// Hinton KD with `T^2` and PyTorch `batchmean` ([`HintonKdConfig`]).
    Hinton(HintonKdConfig),
    /// Decoupled KD ([`DkdConfig`]).
    Dkd(DkdConfig),
    /// Logit-standardized KD ([`LogitStandardKdConfig`]).
    Lskd(LogitStandardKdConfig),
    /// DIST, relations by Pearson correlation ([`DistConfig`]).
    Dist(DistConfig),
    /// Multi-level logit distillation ([`MlkdConfig`]).
    Mlkd(MlkdConfig),
    /// FitNets feature hints ([`FitNetsConfig`]); needs the models' features.
    Fitnets(FitNetsConfig),
    /// Attention transfer ([`AttentionConfig`]); needs the models' features.
    At(AttentionConfig),
    /// Relational KD ([`RkdConfig`]); needs the models' features.
    Rkd(RkdConfig),
    /// Contrastive representation distillation ([`CrdConfig`]); needs the models'
    /// features and the training images' indices.
    Crd(CrdConfig),
    /// SimKD, the student reusing the teacher's head ([`SimKdConfig`]); needs the models'
    /// features, and makes the distilled student a SimKD student
    /// ([`kd_models::SimKdStudentConfig`]).
    Simkd(SimKdConfig),
}

impl Default for LossConfig {
    /// The seed's loss.
    fn default() -> Self {
        Self::KerasKd(KerasKdConfig::default())
    }
}

/// The names `loss` accepts.
pub const LOSS_NAMES: [&str; 11] = [
    "keras-kd", "hinton", "dkd", "lskd", "dist", "mlkd", "fitnets", "at", "rkd", "crd", "simkd",
];

impl LossConfig {
    /// The loss's name as written in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::KerasKd(_) => "keras-kd",
            Self::Hinton(_) => "hinton",
            Self::Dkd(_) => "dkd",
            Self::Lskd(_) => "lskd",
            Self::Dist(_) => "dist",
            Self::Mlkd(_) => "mlkd",
            Self::Fitnets(_) => "fitnets",
            Self::At(_) => "at",
            Self::Rkd(_) => "rkd",
            Self::Crd(_) => "crd",
            Self::Simkd(_) => "simkd",
        }
    }

    /// Whether the loss compares the models' features (FitNets, AT, RKD, CRD, SimKD): the teacher
    /// then runs live on every batch, and kd's own teacher is needed.
    pub fn is_feature(&self) -> bool {
        matches!(
            self,
            Self::Fitnets(_) | Self::At(_) | Self::Rkd(_) | Self::Crd(_) | Self::Simkd(_)
        )
    }

    /// The student's and the teacher's layers a feature loss compares (`None`: a logit
    /// loss). SimKD's student layer is the one its projector takes (the loss compares the
    /// projector's output).
    pub fn feature_layers(&self) -> Option<[&str; 2]> {
        match self {
            Self::Fitnets(c) => Some([&c.student_layer, &c.teacher_layer]),
            Self::At(c) => Some([&c.student_layer, &c.teacher_layer]),
            Self::Rkd(c) => Some([&c.student_layer, &c.teacher_layer]),
            Self::Crd(c) => Some([&c.student_layer, &c.teacher_layer]),
            Self::Simkd(c) => Some([&c.student_layer, &c.teacher_layer]),
            _ => None,
        }
    }

    /// Checks ranges and builds a feature loss for features of `channels` (student's,
    /// teacher's) and a training set of `images` images; its state (FitNets' regressor,
    /// CRD's heads and memory banks) goes under `path`, in the student's variable store. A
    /// logit loss is an error naming `key.loss`.
    pub fn build_feature(
        &self,
        key: &str,
        path: &nn::Path,
        channels: [i64; 2],
        images: usize,
    ) -> Result<Box<dyn FeatureLoss>> {
        let [student_channels, teacher_channels] = channels;
        Ok(match self {
            Self::Fitnets(c) => Box::new(c.build(key, path, student_channels, teacher_channels)?),
            Self::At(c) => Box::new(c.build(key)?),
            Self::Rkd(c) => Box::new(c.build(key)?),
            Self::Crd(c) => Box::new(c.build(key, path, channels, images)?),
            Self::Simkd(c) => Box::new(c.build(key)?),
            other => {
                return Err(CoreError::InvalidConfig {
                    key: format!("{key}.loss"),
                    expected: "a feature loss here (fitnets, at, rkd, crd or simkd)".into(),
                    got: other.name().into(),
                })
            }
        })
    }

    /// The temperature the loss softens the teacher's logits by (`None`: the feature
    /// losses, which soften none; CRD's is its contrast's). LSKD divides the standardized logits by it; MLKD, which uses several,
    /// gives their middle one.
    pub fn temperature(&self) -> Option<f64> {
        match self {
            Self::KerasKd(c) => Some(c.temperature),
            Self::Hinton(c) => Some(c.temperature),
            Self::Dkd(c) => Some(c.temperature),
            Self::Lskd(c) => Some(c.temperature),
            Self::Dist(c) => Some(c.temperature),
            Self::Mlkd(c) => Some(c.central_temperature()),
            Self::Fitnets(_) | Self::At(_) | Self::Rkd(_) | Self::Crd(_) | Self::Simkd(_) => None,
        }
    }

    /// Checks ranges and builds a logit loss; `key` prefixes error messages. The feature
    /// losses are built with [`LossConfig::build_feature`] instead.
    pub fn build(&self, key: &str) -> Result<Box<dyn DistillLoss>> {
        Ok(match self {
            Self::KerasKd(c) => Box::new(c.build(key)?),
            Self::Hinton(c) => Box::new(c.build(key)?),
            Self::Dkd(c) => Box::new(c.build(key)?),
            Self::Lskd(c) => Box::new(c.build(key)?),
            Self::Dist(c) => Box::new(c.build(key)?),
            Self::Mlkd(c) => Box::new(c.build(key)?),
            feature @ (Self::Fitnets(_)
            | Self::At(_)
            | Self::Rkd(_)
            | Self::Crd(_)
            | Self::Simkd(_)) => {
                return Err(CoreError::InvalidConfig {
                    key: format!("{key}.loss"),
                    expected: "a logit loss here (a feature loss needs the models' features: LossConfig::build_feature)".into(),
                    got: feature.name().into(),
                })
            }
        })
    }

    /// Checks ranges without building anything.
    pub fn validate(&self, key: &str) -> Result<()> {
        match self {
            Self::Fitnets(c) => c.validate(key),
            Self::At(c) => c.build(key).map(|_| ()),
            Self::Rkd(c) => c.build(key).map(|_| ()),
            Self::Crd(c) => c.validate(key),
            Self::Simkd(c) => c.validate(key),
            other => other.build(key).map(|_| ()),
        }
    }
}

impl<'de> Deserialize<'de> for LossConfig {
    /// Reads `loss` (default `keras-kd`), then the named loss's own keys.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let name = match map.remove("loss") {
            None => "keras-kd".to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "loss: expected one of {LOSS_NAMES:?}, got {other}"
                )))
            }
        };
        let rest = serde_json::Value::Object(map);
        let parsed = match name.as_str() {
            "keras-kd" => serde_json::from_value(rest).map(Self::KerasKd),
            "hinton" => serde_json::from_value(rest).map(Self::Hinton),
            "dkd" => serde_json::from_value(rest).map(Self::Dkd),
            "lskd" => serde_json::from_value(rest).map(Self::Lskd),
            "dist" => serde_json::from_value(rest).map(Self::Dist),
            "mlkd" => serde_json::from_value(rest).map(Self::Mlkd),
            "fitnets" => serde_json::from_value(rest).map(Self::Fitnets),
            "at" => serde_json::from_value(rest).map(Self::At),
            "rkd" => serde_json::from_value(rest).map(Self::Rkd),
            "crd" => serde_json::from_value(rest).map(Self::Crd),
            "simkd" => serde_json::from_value(rest).map(Self::Simkd),
            other => {
                return Err(D::Error::custom(format!(
                    "loss: expected one of {LOSS_NAMES:?}, got {other:?}"
                )))
            }
        };
        parsed.map_err(|e| D::Error::custom(format!("loss {name:?}: {e}")))
    }
}

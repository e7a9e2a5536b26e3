//! `[distill]`: the distillation loss by name with its parameters (kd-core's
//! [`LossConfig`]), and how the teacher sees the student's training batches — consistent
//! teaching (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and
//! consistent"): `teacher_views = "same"` runs the teacher live on exactly the student's
//! (augmented) batch, and `mixup = α` mixes every batch that both then see.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use kd_core::LossConfig;

/// How the teacher sees the student's training batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TeacherViews {
    /// Cached logits where the batches are not augmented (`teacher.cache`), live otherwise.
    #[default]
    Auto,
    /// Live, on exactly the batch the student sees, never from a cache.
    Same,
}

impl TeacherViews {
    /// The name a config gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Same => "same",
        }
    }
}

/// The `[distill]` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DistillConfig {
    /// The loss, tagged by `loss` (`keras-kd`, `hinton`, `dkd`, `lskd`, `fitnets`), with its
    /// parameters.
    pub loss: LossConfig,
    /// How the teacher sees the student's batches: `auto` or `same`.
    pub teacher_views: TeacherViews,
    /// mixup's `α` in `[0, 1]` (0: off): teacher and student see the same mixed images.
    pub mixup: f64,
}

impl DistillConfig {
    /// Whether the teacher must run live on the student's batches (a cache would give it
    /// other images than the student's).
    pub fn needs_live_teacher(&self) -> bool {
        self.teacher_views == TeacherViews::Same || self.mixup > 0.0
    }

    /// Checks the loss and mixup's range; `key` (`distill`) prefixes error messages.
    pub fn validate(&self, key: &str) -> anyhow::Result<()> {
        self.loss.validate(key)?;
        if !(0.0..=1.0).contains(&self.mixup) {
            anyhow::bail!(
                "{key}.mixup: expected a value in [0, 1] (0: off), got {}",
                self.mixup
            );
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for DistillConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let teacher_views = match map.remove("teacher_views") {
            None => TeacherViews::Auto,
            Some(serde_json::Value::String(s)) if s == "auto" => TeacherViews::Auto,
            Some(serde_json::Value::String(s)) if s == "same" => TeacherViews::Same,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "distill.teacher_views: expected \"auto\" or \"same\", got {other}"
                )))
            }
        };
        let mixup = match map.remove("mixup") {
            None => 0.0,
            Some(v) => v.as_f64().ok_or_else(|| {
                D::Error::custom(format!(
                    "distill.mixup: expected a number in [0, 1], got {v}"
                ))
            })?,
        };
        let loss = LossConfig::deserialize(serde_json::Value::Object(map))
            .map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(Self {
            loss,
            teacher_views,
            mixup,
        })
    }
}

/// What [`DistillConfig`] writes: the loss's keys in their order, then `teacher_views` and
/// `mixup` where they are not the defaults (a default section reads as it always did).
#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    loss: &'a LossConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    teacher_views: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mixup: Option<f64>,
}

impl Serialize for DistillConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Written {
            loss: &self.loss,
            teacher_views: (self.teacher_views != TeacherViews::Auto)
                .then(|| self.teacher_views.name()),
            mixup: (self.mixup != 0.0).then_some(self.mixup),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DistillConfig, String> {
        toml::from_str::<DistillConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn consistent_teaching_keys_sit_beside_the_loss_and_round_trip() {
        let c = parse("loss = \"hinton\"\nalpha = 0.2\nteacher_views = \"same\"\nmixup = 0.5\n")
            .unwrap();
        assert!(matches!(&c.loss, LossConfig::Hinton(h) if h.alpha == 0.2));
        assert_eq!((c.teacher_views, c.mixup), (TeacherViews::Same, 0.5));
        assert!(c.needs_live_teacher());
        let again = parse(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        // A section without them reads and writes as before.
        let plain = parse("loss = \"dkd\"\n").unwrap();
        assert!(!plain.needs_live_teacher());
        let written = toml::to_string(&plain).unwrap();
        assert!(
            !written.contains("mixup") && !written.contains("teacher_views"),
            "{written}"
        );
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let err = parse("teacher_views = \"other\"\n").unwrap_err();
        assert!(
            err.contains("distill.teacher_views") && err.contains("\"same\""),
            "{err}"
        );
        let err = parse("mixup = \"lots\"\n").unwrap_err();
        assert!(err.contains("distill.mixup"), "{err}");
        let high = parse("mixup = 1.5\n").unwrap();
        let err = high.validate("distill").unwrap_err().to_string();
        assert!(
            err.contains("distill.mixup") && err.contains("[0, 1]"),
            "{err}"
        );
        // The loss's own keys are still checked.
        let err = parse("loss = \"hinton\"\nbeta = 1\n").unwrap_err();
        assert!(err.contains("beta"), "{err}");
    }
}

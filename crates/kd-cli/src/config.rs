//! The run configuration: one TOML file whose sections are the configs of the components
//! they build (data, teacher, student, distillation loss). Unknown keys are errors; missing
//! keys take the seed notebook's defaults. Relative paths resolve against the current
//! working directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_core::{CacheConfig, LossConfig};
use kd_data::{DatasetKind, TransformConfig};
use kd_models::{ModelConfig, Precision, StudentConfig};
use kd_train::TrainConfig;
use serde::{Deserialize, Serialize};

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the run; the default output directory is `runs/<name>/seed-<seed>`.
    pub name: String,
    /// Seeds weight initialization, shuffling and the validation split; the seed notebook
    /// shuffles with 19.
    pub seed: u64,
    /// `auto` (CUDA when available), `cpu` or `cuda`.
    pub device: DeviceChoice,
    /// CPU threads for libtorch; 0 keeps libtorch's default.
    pub threads: usize,
    /// Arithmetic of every forward pass: `f32`, or mixed precision `bf16` / `f16`
    /// (libtorch autocast; parameters, gradients and losses stay float32).
    pub precision: Precision,
    /// Convolutions in channels-last (NHWC) memory format: same results up to float
    /// rounding, faster convolutions on CPU (oneDNN) and on tensor-core GPUs.
    pub channels_last: bool,
    pub data: DataConfig,
    pub teacher: TeacherConfig,
    pub student: StudentSection,
    /// The distillation loss, by name (`loss = "dkd"`) with its parameters.
    pub distill: LossConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            seed: 19,
            device: DeviceChoice::Auto,
            threads: 0,
            precision: Precision::F32,
            channels_last: false,
            data: DataConfig::default(),
            teacher: TeacherConfig::default(),
            student: StudentSection::default(),
            distill: LossConfig::default(),
        }
    }
}

/// Where the compute runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

/// Which dataset, where, and how it is split and preprocessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `fashion-mnist`, `mnist`, `cifar10`, `cifar100` or `cifar100-coarse`.
    pub dataset: DatasetKind,
    /// Directory holding the dataset's files (default: where `cargo xtask fetch-data` puts
    /// them, e.g. `data/cifar-10-batches-bin`).
    pub dir: Option<PathBuf>,
    /// Training images held out (seeded) for validation; 0 validates on the test set, as the
    /// seed notebook does.
    pub validation_holdout: usize,
    /// Use only the first N training images (0: all).
    pub train_limit: usize,
    /// Use only the first N test images (0: all).
    pub test_limit: usize,
    pub transform: TransformConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            validation_holdout: 5000,
            train_limit: 0,
            test_limit: 0,
            transform: TransformConfig::default(),
        }
    }
}

impl DataConfig {
    /// The dataset directory: `dir`, or the dataset's default.
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| self.dataset.default_dir())
    }

    /// `[channels, height, width]` of the model input after the transform.
    pub fn input_shape(&self) -> [usize; 3] {
        self.transform.output_shape(self.dataset.image_shape())
    }
}

/// The teacher: its architecture, and either a checkpoint to load or how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    pub model: ModelConfig,
    /// A `.safetensors` file to load instead of training the teacher.
    pub checkpoint: Option<PathBuf>,
    /// Whether and how the teacher's logits are cached for the students.
    pub cache: CacheConfig,
    pub train: TrainConfig,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::Cnn(Default::default()),
            checkpoint: None,
            cache: CacheConfig::default(),
            train: TrainConfig {
                epochs: 25,
                lr: 1e-5,
                ..Default::default()
            },
        }
    }
}

/// The student: its architecture and how it trains (the same settings are used for the
/// distilled student and for the from-scratch baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentSection {
    pub model: ModelConfig,
    /// Train the students on a seeded random subset of this many training images (0: all
    /// of them); the teacher always trains on the whole training split.
    pub train_images: usize,
    pub train: TrainConfig,
}

impl Default for StudentSection {
    fn default() -> Self {
        Self {
            model: ModelConfig::Student(StudentConfig::default()),
            train_images: 0,
            train: TrainConfig::default(),
        }
    }
}

/// Lays `user` over `base`: tables merge key by key, everything else is replaced. A table
/// whose `kind` (architecture) or `loss` differs from the base's replaces it whole.
fn merge(base: &mut toml::Value, user: toml::Value) {
    match (base, user) {
        (toml::Value::Table(b), toml::Value::Table(u)) => {
            let retagged = |tag: &str| u.get(tag).is_some_and(|k| b.get(tag) != Some(k));
            if retagged("kind") || retagged("loss") {
                *b = u;
                return;
            }
            for (key, value) in u {
                match b.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        b.insert(key, value);
                    }
                }
            }
        }
        (b, u) => *b = u,
    }
}

impl RunConfig {
    /// Reads and parses `path`; errors name the file, and TOML errors the line and key.
    ///
    /// Keys a section leaves out take their values from [`RunConfig::default`] at the same
    /// place, so `[teacher.train] epochs = 3` keeps the teacher's default learning rate
    /// (not the student's, which a bare `TrainConfig` default would give).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the config", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses a config's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        // First pass: the user's text alone, so that errors carry line numbers.
        let _checked: Self = toml::from_str(text).map_err(|e| {
            // toml's own Display spans several lines (a source snippet); keep one line.
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .map_or(String::new(), |l| format!("line {l}: "));
            anyhow::anyhow!(
                "{}: invalid config: {line}{}",
                path.display(),
                e.message().trim()
            )
        })?;
        // Second pass: the user's values laid over the defaults, section by section.
        let user: toml::Value = toml::from_str(text).context("config is not TOML")?;
        let mut merged = toml::Value::try_from(Self::default())
            .context("cannot serialize the default config")?;
        merge(&mut merged, user);
        let mut cfg: Self = merged
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: invalid config: {e}", path.display()))?;
        cfg.data.dir = Some(cfg.data.dir());
        Ok(cfg)
    }

    /// Checks every range that does not depend on the data (the model shapes are checked
    /// once the input size is known).
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            bail!(
                "name: expected a non-empty name without path separators, got {:?}",
                self.name
            );
        }
        self.teacher.train.validate("teacher.train")?;
        self.student.train.validate("student.train")?;
        self.distill.validate("distill")?;
        if let Some(weights) = self.teacher.model.pretrained() {
            if !weights.is_file() && self.teacher.checkpoint.is_none() {
                bail!(
                    "teacher.model.pretrained: expected an existing .safetensors file (run `cargo xtask fetch-weights vgg19`, or remove the key to start from random weights), got {}",
                    weights.display()
                );
            }
        }
        if let Some(ckpt) = &self.teacher.checkpoint {
            if !ckpt.is_file() {
                bail!(
                    "teacher.checkpoint: expected an existing .safetensors file, got {}",
                    ckpt.display()
                );
            }
        }
        Ok(())
    }

    /// Serializes the config back to TOML (the resolved config written into a run).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("cannot serialize the resolved config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kd_models::VggConfig;

    fn parse(text: &str) -> RunConfig {
        RunConfig::parse(text, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn a_partial_section_keeps_the_defaults_of_its_place() {
        let cfg = parse("[teacher.train]\nepochs = 3\n[student.train]\nlr = 0.01\n");
        assert_eq!(cfg.teacher.train.epochs, 3);
        assert_eq!(cfg.teacher.train.lr, 1e-5, "the teacher's default rate");
        assert_eq!(cfg.student.train.lr, 0.01);
        assert_eq!(cfg.student.train.epochs, 20);
        assert_eq!(cfg.data.dir, Some(PathBuf::from("data/fashion-mnist")));
    }

    #[test]
    fn another_architecture_replaces_the_default_model_whole() {
        let cfg = parse("[teacher.model]\nkind = \"vgg\"\ndepth = 16\n");
        assert_eq!(
            cfg.teacher.model,
            ModelConfig::Vgg(VggConfig {
                depth: 16,
                pretrained: None
            })
        );
        let cfg = parse("[data]\ndataset = \"cifar100\"\n");
        assert_eq!(cfg.data.dir, Some(PathBuf::from("data/cifar-100-binary")));
    }

    #[test]
    fn errors_keep_their_line_numbers() {
        let err = RunConfig::parse(
            "seed = 1\n[data]\ndataset = \"imagenet\"\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.toml") && err.contains("line 3"), "{err}");
    }
}

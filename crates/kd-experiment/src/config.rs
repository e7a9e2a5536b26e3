//! The run configuration: one TOML file whose sections are the configs of the components
//! they build (data, teacher, student, distillation loss). Unknown keys are errors; missing
//! keys take the seed notebook's defaults. Relative paths resolve against the current
//! working directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_core::{CacheConfig, CacheMode};
use kd_data::{DatasetKind, ImageFolderConfig, TransformConfig};
use kd_models::{ClassMapConfig, Combine, ModelConfig, Precision, StudentConfig, TeacherInput};
use kd_train::TrainConfig;
use serde::{Deserialize, Serialize};
use tch::Device;

pub use crate::distill_config::{DistillConfig, TeacherViews};

/// `precision` in a config: `auto`, or one fixed precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// bf16 where the device computes it natively, else f32
    /// ([`kd_models::native_precision`]).
    #[default]
    Auto,
    /// Float32 throughout.
    F32,
    /// Mixed precision in bfloat16 (libtorch autocast).
    Bf16,
    /// Mixed precision in float16 (libtorch autocast), training through a loss scaler.
    F16,
}

impl PrecisionChoice {
    /// The fixed precision, `None` for `auto`.
    pub fn fixed(self) -> Option<Precision> {
        match self {
            Self::Auto => None,
            Self::F32 => Some(Precision::F32),
            Self::Bf16 => Some(Precision::Bf16),
            Self::F16 => Some(Precision::F16),
        }
    }

    /// The choice for a fixed precision.
    pub fn of(precision: Precision) -> Self {
        match precision {
            Precision::F32 => Self::F32,
            Precision::Bf16 => Self::Bf16,
            Precision::F16 => Self::F16,
        }
    }

    /// The precision on `device`, and why (`auto`'s reason, or "set in the config"); fails
    /// on an unknown `KD_AUTO_PRECISION` ([`kd_models::auto_precision`]).
    pub fn resolve(self, device: Device) -> Result<(Precision, String)> {
        match self.fixed() {
            Some(p) => Ok((p, "set in the config".into())),
            None => {
                let auto = kd_models::auto_precision(device).map_err(anyhow::Error::msg)?;
                Ok((auto.precision, format!("default: {}", auto.reason)))
            }
        }
    }
}

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
    /// Arithmetic of every forward pass: `auto` (the default: bf16 where the device computes
    /// it natively, else f32; `kd-cli env` says which and why), `f32`, or mixed precision
    /// `bf16` / `f16` (libtorch autocast; parameters, gradients and losses stay float32).
    pub precision: PrecisionChoice,
    /// Convolutions in channels-last (NHWC) memory format (the default): same results up to
    /// float rounding, faster convolutions on CPU (oneDNN) and on tensor-core GPUs.
    pub channels_last: bool,
    /// The dataset, its split and its preprocessing (`[data]`).
    pub data: DataConfig,
    /// The teacher (`[teacher]`): its architecture, and a file to load or how to train it.
    pub teacher: TeacherConfig,
    /// The students (`[student]`): one architecture and training for both.
    pub student: StudentSection,
    /// The distillation loss, by name (`loss = "dkd"`) with its parameters, and how the
    /// teacher sees the student's batches.
    pub distill: DistillConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            seed: 19,
            device: DeviceChoice::Auto,
            threads: 0,
            precision: PrecisionChoice::Auto,
            channels_last: true,
            data: DataConfig::default(),
            teacher: TeacherConfig::default(),
            student: StudentSection::default(),
            distill: DistillConfig::default(),
        }
    }
}

/// Where the compute runs (the config's `device`, and `--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device; an error where there is none.
    Cuda,
}

impl DeviceChoice {
    /// The device: `auto` is CUDA when available; `cuda` without one is an error naming
    /// `key`.
    pub fn resolve(self, key: &str) -> Result<tch::Device> {
        Ok(match self {
            Self::Auto => crate::env::default_device(),
            Self::Cpu => tch::Device::Cpu,
            Self::Cuda if tch::Cuda::is_available() => tch::Device::Cuda(0),
            Self::Cuda => bail!("{key}: expected a CUDA device, but none is available"),
        })
    }
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
    /// How images become the model's input: `pad_to`, then per-channel `mean` and `std`
    /// after scaling to [0, 1].
    pub transform: TransformConfig,
    /// How an `image-folder` dataset is decoded (`image_size`, `channels`, `resize`,
    /// `on_bad_image`); unused by the built-in datasets.
    pub image_folder: ImageFolderConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            validation_holdout: 5000,
            train_limit: 0,
            test_limit: 0,
            // The seed's 32x32 student on 28x28 Fashion-MNIST ([`chooses_its_input`]).
            transform: TransformConfig {
                pad_to: Some(32),
                ..TransformConfig::default()
            },
            image_folder: ImageFolderConfig::default(),
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

    /// `[channels, height, width]` of an image as read (an image folder's from its settings).
    pub fn image_shape(&self) -> [usize; 3] {
        self.dataset
            .image_shape()
            .unwrap_or_else(|| self.image_folder.image_shape())
    }

    /// `[channels, height, width]` of the model input after the transform.
    pub fn input_shape(&self) -> [usize; 3] {
        self.transform.output_shape(self.image_shape())
    }

    /// The number of classes (an image folder's from its `train/` subfolders).
    pub fn classes(&self) -> Result<usize> {
        match self.dataset.classes() {
            Some(n) => Ok(n),
            None => Ok(kd_data::image_folder::class_names(&self.dir().join("train"))?.len()),
        }
    }

    /// Reads the dataset's splits.
    pub fn load(&self) -> Result<kd_data::Splits> {
        Ok(self.dataset.load(&self.dir(), &self.image_folder)?)
    }
}

/// The teacher: its architecture, and either a checkpoint to load or how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// The teacher's architecture, tagged by `kind` (unused with `torchscript`).
    pub model: ModelConfig,
    /// A `.safetensors` file to load instead of training the teacher.
    pub checkpoint: Option<PathBuf>,
    /// A module saved by PyTorch's `torch.jit.save` to teach instead of a kd model
    /// (`model` and `train` are then unused).
    pub torchscript: Option<PathBuf>,
    /// An ONNX classifier to teach instead of a kd model, run by tract (`model` and
    /// `train` are then unused).
    pub onnx: Option<PathBuf>,
    /// The teacher's file, whatever its format: read as `onnx` for a `.onnx` file,
    /// `checkpoint` for a `.safetensors` one, `torchscript` otherwise (resolved on load).
    #[serde(skip_serializing)]
    pub source: Option<PathBuf>,
    /// A teacher logits file (`kd-cli teach --out`): its logits teach instead of any
    /// teacher (`model`, `train` and the teacher files are then unused).
    pub logits: Option<PathBuf>,
    /// An ensemble of teacher files (`[[teacher.ensemble]]`: `source`, `weight`) teaches
    /// as one teacher, their logits combined by `combine`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<EnsembleMember>,
    /// How an ensemble combines its members: `"probability"` (the log of the weighted mean
    /// of their distributions) or `"logits"` (the weighted mean of their logits).
    #[serde(skip_serializing_if = "is_probability")]
    pub combine: Combine,
    /// What a teacher from outside kd expects: `mean`, `std`, `image_size`, `channels`,
    /// `resize`.
    pub input: TeacherInput,
    /// How a teacher from outside kd with other classes than the dataset's maps onto them:
    /// a list of teacher class indices (one per dataset class), or a table from teacher
    /// class to dataset class ([`kd_models::class_map`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_map: Option<ClassMapConfig>,
    /// Whether and how the teacher's logits are cached for the students.
    pub cache: CacheConfig,
    /// How the run trains the teacher; unused with `checkpoint` or `torchscript`.
    pub train: TrainConfig,
}

/// One member of a teacher ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleMember {
    /// Its file: `.onnx`, a kd model `.safetensors` (its architecture in its metadata), or
    /// TorchScript.
    pub source: PathBuf,
    /// Its weight (normalized over the members).
    #[serde(default = "one")]
    pub weight: f64,
    /// Its class map, when it differs from `teacher.class_map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_map: Option<ClassMapConfig>,
}

fn one() -> f64 {
    1.0
}

fn is_probability(c: &Combine) -> bool {
    *c == Combine::Probability
}

impl TeacherConfig {
    /// Whether the teacher is a file from outside kd (`torchscript`, `onnx`) or an
    /// ensemble of files.
    pub fn is_outside(&self) -> bool {
        self.torchscript.is_some() || self.onnx.is_some() || !self.ensemble.is_empty()
    }

    /// Whether the run builds a kd teacher from `model` (not a file from outside kd, not a
    /// logits file).
    pub fn uses_model(&self) -> bool {
        !self.is_outside() && self.logits.is_none()
    }
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::Cnn(Default::default()),
            checkpoint: None,
            torchscript: None,
            onnx: None,
            source: None,
            logits: None,
            ensemble: Vec::new(),
            combine: Combine::Probability,
            input: TeacherInput::default(),
            class_map: None,
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
    /// The students' architecture, tagged by `kind`.
    pub model: ModelConfig,
    /// Train the students on a seeded random subset of this many training images (0: all
    /// of them); the teacher always trains on the whole training split.
    pub train_images: usize,
    /// Images the distilled student also learns from, through the teacher alone (the
    /// transfer set): `"rest"` (the training images outside `train_images`), a folder of
    /// images, or `""` (none). The scratch student never sees them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unlabeled: String,
    /// At most this many unlabeled images, a seeded subset (0: all of them).
    #[serde(skip_serializing_if = "is_zero")]
    pub unlabeled_images: usize,
    /// How both students train.
    pub train: TrainConfig,
}

impl Default for StudentSection {
    fn default() -> Self {
        Self {
            model: ModelConfig::Student(StudentConfig::default()),
            train_images: 0,
            unlabeled: String::new(),
            unlabeled_images: 0,
            train: TrainConfig::default(),
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The built-in defaults as a commented TOML file (`kd-cli config default`).
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// A command-line override `KEY=VALUE`, e.g. `student.train.lr=3e-4`: `KEY` is a dotted
/// path into the config, `VALUE` a TOML value (bare words are strings: `distill.loss=dkd`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    key: Vec<String>,
    value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE (e.g. student.train.lr=3e-4), got {s:?}"))?;
        let key: Vec<String> = key.trim().split('.').map(str::to_string).collect();
        if key.iter().any(|k| k.is_empty()) {
            return Err(format!(
                "expected a dotted key such as student.train.lr, got {s:?}"
            ));
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(Self { key, value })
    }
}

impl Override {
    /// `key` (dotted) set to `value`.
    pub fn new(key: &str, value: toml::Value) -> Self {
        Self {
            key: key.split('.').map(str::to_string).collect(),
            value,
        }
    }

    /// `key` (dotted) set to the string `value`, taken as it is (a path, say).
    pub fn string(key: &str, value: &str) -> Self {
        Self::new(key, toml::Value::String(value.to_string()))
    }
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key.join("."), self.value)
    }
}

impl Override {
    /// The override as a nested table, `{student: {train: {lr: 3e-4}}}`.
    fn as_table(&self) -> toml::Value {
        self.key.iter().rev().fold(self.value.clone(), |inner, k| {
            toml::Value::Table(toml::Table::from_iter([(k.clone(), inner)]))
        })
    }
}

/// Whether a config (its text `user`, its overrides `sets`) chooses its own input — names a
/// dataset or a student model — and leaves `data.transform.pad_to` unsaid: then it gets no
/// padding. The built-in defaults pad the default dataset (Fashion-MNIST, 28x28) to the
/// 32x32 the default student (the seed's) needs, so that a config that changes neither, like
/// `[student.train] lr = 1`, runs as the printed defaults do.
fn chooses_its_input(user: &toml::Value, sets: &[Override]) -> bool {
    let written = |path: &[&str]| {
        let in_text = path.iter().try_fold(user, |v, k| v.get(k)).is_some();
        in_text
            || sets
                .iter()
                .any(|s| s.key.iter().zip(path).all(|(a, b)| a == b) && s.key.len() >= path.len())
    };
    let chooses = written(&["data", "dataset"]) || written(&["student", "model"]);
    chooses && !written(&["data", "transform", "pad_to"])
}

/// Removes the built-in default's `data.transform.pad_to` from a merged config.
fn drop_default_padding(merged: &mut toml::Value) {
    if let Some(toml::Value::Table(t)) = merged.get_mut("data").and_then(|d| d.get_mut("transform"))
    {
        t.remove("pad_to");
    }
}

/// The dotted key (`teacher.train.epochs`) of the `key = value` line holding byte `offset`
/// of a TOML text, or the table of a `[table]` line; `None` elsewhere.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    let unquote = |k: &str| k.trim().trim_matches('"').to_string();
    let table_of = |header: &str| unquote(header.trim_matches(|c| c == '[' || c == ']'));
    if line.starts_with('[') {
        return Some(table_of(line));
    }
    let (key, _) = line.split_once('=')?;
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| table_of(header.split('#').next().unwrap_or(header).trim()));
    Some(match table {
        Some(t) => format!("{t}.{}", unquote(key)),
        None => unquote(key),
    })
}

/// A multi-line message on one line (its lines joined with `; `).
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Old key names still accepted: (section, old name, name). Renamed before the file is laid
/// over the defaults, which hold the new name (both would be a duplicate key).
const RENAMED_KEYS: [(&str, &str, &str); 1] =
    [("distill", "scale_by_t_squared", "temperature_squared")];

/// Moves `teacher.source` of a user table to the key its file's format reads it under
/// (`onnx`, `checkpoint` or `torchscript`); an error when that key is also given. A kd
/// model file as the checkpoint, without `[teacher.model]`, gives the architecture its
/// metadata records.
fn resolve_teacher_source(user: &mut toml::Value) -> Result<()> {
    let Some(toml::Value::Table(t)) = user.get_mut("teacher") else {
        return Ok(());
    };
    if let Some(source) = t.remove("source") {
        resolve_source(t, source)?;
    }
    let checkpoint = t
        .get("checkpoint")
        .and_then(|c| c.as_str())
        .map(PathBuf::from);
    if let (Some(path), false) = (checkpoint, t.contains_key("model")) {
        let recorded = ModelConfig::recorded_in(&path)
            .and_then(|m| toml::Value::try_from(m.without_pretrained()).ok());
        if let Some(model) = recorded {
            t.insert("model".into(), model);
        }
    }
    Ok(())
}

/// Puts `source` under the key its file's format reads it under.
fn resolve_source(t: &mut toml::Table, source: toml::Value) -> Result<()> {
    let path = source.as_str().unwrap_or_default();
    let key = match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("onnx") => "onnx",
        Some("safetensors") => "checkpoint",
        _ => "torchscript",
    };
    if t.contains_key(key) {
        bail!("teacher.source and teacher.{key}: expected one teacher file, got both");
    }
    t.insert(key.to_string(), source);
    Ok(())
}

/// Renames the old keys of [`RENAMED_KEYS`] in a user table.
fn rename_old_keys(user: &mut toml::Value) {
    for (section, old, new) in RENAMED_KEYS {
        if let Some(toml::Value::Table(t)) = user.get_mut(section) {
            if let Some(v) = t.remove(old) {
                t.entry(new).or_insert(v);
            }
        }
    }
}

/// Keys of `[distill]` that belong to no loss: another `loss` keeps them.
const KEPT_ACROSS_LOSSES: [&str; 2] = ["teacher_views", "mixup"];

/// Lays `user` over `base`: tables merge key by key, everything else is replaced. A table
/// whose `kind` (architecture) or `loss` differs from the base's replaces it whole, but for
/// the keys no loss owns ([`KEPT_ACROSS_LOSSES`]).
fn merge(base: &mut toml::Value, user: toml::Value) {
    match (base, user) {
        (toml::Value::Table(b), toml::Value::Table(mut u)) => {
            let retagged = |tag: &str| u.get(tag).is_some_and(|k| b.get(tag) != Some(k));
            if retagged("kind") || retagged("loss") {
                if u.contains_key("loss") {
                    for key in KEPT_ACROSS_LOSSES {
                        if let (Some(v), false) = (b.get(key), u.contains_key(key)) {
                            u.insert(key.to_string(), v.clone());
                        }
                    }
                }
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
    /// Whether the run caches the teacher's logits: a logit loss (not a feature loss) on batches the
    /// cache mode allows (by default, un-augmented ones), unless the teacher must see the
    /// student's own batches (`distill.teacher_views = "same"`, mixup).
    pub fn caches_teacher_logits(&self) -> bool {
        let augmented = self.student.train.augment.is_enabled();
        !self.distill.loss.is_feature()
            && !self.distill.needs_live_teacher()
            && self.teacher.cache.mode.caches(augmented)
    }

    /// The precision of every forward pass: the config's fixed one (`auto` is resolved to
    /// one when a run loads its config, [`RunConfig::resolve_precision`]; float32 if not).
    pub fn precision(&self) -> Precision {
        self.precision.fixed().unwrap_or(Precision::F32)
    }

    /// Replaces `precision = "auto"` by the precision it picks on `device`; returns it and
    /// why.
    pub fn resolve_precision(&mut self, device: Device) -> Result<(Precision, String)> {
        let (precision, why) = self.precision.resolve(device)?;
        self.precision = PrecisionChoice::of(precision);
        Ok((precision, why))
    }

    /// Reads and parses `path`; errors name the file, and TOML errors the line and key.
    ///
    /// Keys a section leaves out take their values from [`RunConfig::default`] at the same
    /// place, so `[teacher.train] epochs = 3` keeps the teacher's default learning rate
    /// (not the student's, which a bare `TrainConfig` default would give).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// [`RunConfig::load`], then the `--set` overrides on top.
    pub fn load_with(path: &Path, sets: &[Override]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the config", path.display()))?;
        Self::parse_with(&text, path, sets)
    }

    /// Parses a config's text; `path` names it in errors.
    ///
    /// ```
    /// use std::path::Path;
    /// use kd_experiment::config::RunConfig;
    ///
    /// let text = "seed = 7\n[teacher.train]\nepochs = 3\n";
    /// let cfg = RunConfig::parse(text, Path::new("my.toml"))?;
    /// assert_eq!((cfg.seed, cfg.teacher.train.epochs), (7, 3));
    /// // Keys left out keep the defaults of their place: the teacher's own learning rate.
    /// assert_eq!(cfg.teacher.train.lr, RunConfig::default().teacher.train.lr);
    ///
    /// let err = RunConfig::parse("seed = \"x\"\n", Path::new("my.toml")).unwrap_err();
    /// assert!(err.to_string().contains("my.toml"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        Self::parse_with(text, path, &[])
    }

    /// Parses a config's text and applies `sets` over it, in order; `path` names the file in
    /// errors, `--set KEY=VALUE` names an override.
    ///
    /// ```
    /// use std::path::Path;
    /// use kd_experiment::config::{Override, RunConfig};
    ///
    /// let set: Override = "student.train.lr=3e-4".parse().map_err(anyhow::Error::msg)?;
    /// let text = "[student.train]\nlr = 0.01\nepochs = 5\n";
    /// let cfg = RunConfig::parse_with(text, Path::new("my.toml"), &[set])?;
    /// assert_eq!(cfg.student.train.lr, 3e-4);
    /// assert_eq!(cfg.student.train.epochs, 5, "the file's other keys stay");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn parse_with(text: &str, path: &Path, sets: &[Override]) -> Result<Self> {
        if toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("tune")) {
            bail!(
                "{}: has a [tune] section: `kd-cli tune {}` runs the search (`run` runs one configuration)",
                path.display(),
                path.display()
            );
        }
        // First pass: the user's text alone, so that errors carry line numbers.
        let _checked: Self = toml::from_str(text).map_err(|e| {
            // toml's own Display spans several lines (a source snippet); keep one line.
            let at = e.span().map_or(String::new(), |s| {
                let line = text[..s.start].matches('\n').count() + 1;
                match key_at(text, s.start) {
                    Some(key) => format!("line {line}: {key}: "),
                    None => format!("line {line}: "),
                }
            });
            anyhow::anyhow!(
                "{}: invalid config: {at}{}",
                path.display(),
                one_line(e.message())
            )
        })?;
        // Second pass: the user's values laid over the defaults, section by section, then
        // each override over that, checked as it lands so that an error names it.
        let mut user: toml::Value = toml::from_str(text).context("config is not TOML")?;
        rename_old_keys(&mut user);
        resolve_teacher_source(&mut user).with_context(|| format!("{}", path.display()))?;
        let mut merged = toml::Value::try_from(Self::default())
            .context("cannot serialize the default config")?;
        let own_input = chooses_its_input(&user, sets);
        merge(&mut merged, user);
        if own_input {
            drop_default_padding(&mut merged);
        }
        for set in sets {
            let mut table = set.as_table();
            rename_old_keys(&mut table);
            resolve_teacher_source(&mut table).with_context(|| format!("--set {set}"))?;
            merge(&mut merged, table);
            let _checked: Self = merged
                .clone()
                .try_into()
                .map_err(|e| anyhow::anyhow!("--set {set}: {}", one_line(&e.to_string())))?;
        }
        let mut cfg: Self = merged
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: invalid config: {e}", path.display()))?;
        cfg.data.dir = Some(cfg.data.dir());
        Ok(cfg)
    }

    /// [`RunConfig::load_with`], and what in the resolution would surprise the config's
    /// author: a key of the file that does not take effect because an override changed its
    /// section's `loss` or `kind` (which starts the section from that choice's defaults),
    /// and a data directory that is where another dataset is fetched to.
    pub fn load_with_warnings(path: &Path, sets: &[Override]) -> Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the config", path.display()))?;
        let cfg = Self::parse_with(&text, path, sets)?;
        let user: toml::Value = toml::from_str(&text).context("config is not TOML")?;
        let mut warnings = cfg.dropped_keys(&user, path, sets);
        warnings.extend(cfg.data_dir_warning());
        Ok((cfg, warnings))
    }

    /// Keys of the file (`user`) that do not take effect because an override changed their
    /// section's `loss` or `kind`, which starts the section from that choice's defaults.
    fn dropped_keys(&self, user: &toml::Value, path: &Path, sets: &[Override]) -> Vec<String> {
        fn leaves(
            v: &toml::Value,
            prefix: &mut Vec<String>,
            out: &mut Vec<(Vec<String>, toml::Value)>,
        ) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        prefix.push(k.clone());
                        leaves(v, prefix, out);
                        prefix.pop();
                    }
                }
                other => out.push((prefix.clone(), other.clone())),
            }
        }
        /// Equal as config values: TOML's `4` and `4.0` are the same number here.
        fn same(a: &toml::Value, b: &toml::Value) -> bool {
            match (a, b) {
                (toml::Value::Integer(i), toml::Value::Float(f))
                | (toml::Value::Float(f), toml::Value::Integer(i)) => *i as f64 == *f,
                _ => a == b,
            }
        }
        let Ok(resolved) = toml::Value::try_from(self) else {
            return Vec::new();
        };
        let mut file = Vec::new();
        leaves(user, &mut Vec::new(), &mut file);
        let mut warnings = Vec::new();
        // The overrides that chose another loss or architecture for a section.
        let retagging = sets
            .iter()
            .filter(|s| s.key.last().is_some_and(|k| k == "loss" || k == "kind"));
        for set in retagging {
            let section = &set.key[..set.key.len() - 1];
            for (key, value) in file.iter().filter(|(k, _)| {
                k.len() > section.len()
                    && k.starts_with(section)
                    && k[section.len()..] != set.key[section.len()..]
            }) {
                if sets.iter().any(|s| key.starts_with(&s.key)) {
                    continue;
                }
                let now = key.iter().try_fold(&resolved, |v, k| v.get(k));
                if now.is_some_and(|now| same(now, value)) {
                    continue;
                }
                let dotted = key.join(".");
                let why = match now {
                    None => "which has no such key".to_string(),
                    Some(now) => format!("which starts from its defaults ({dotted} = {now})"),
                };
                warnings.push(format!(
                    "{dotted} = {value} in {} has no effect: --set {set} chose another [{}], {why}",
                    path.display(),
                    section.join(".")
                ));
            }
        }
        warnings
    }

    /// A warning when `data.dir` is the directory `fetch-data` fills for another dataset.
    fn data_dir_warning(&self) -> Option<String> {
        let dir = self.data.dir();
        if self.data.dataset.default_dir() == dir {
            return None;
        }
        let other = DatasetKind::ALL
            .into_iter()
            .find(|k| *k != self.data.dataset && k.default_dir() == dir)?;
        Some(format!(
            "data.dir = {:?} is the default directory of {}, but data.dataset = {:?}: set data.dir to the {} files, or remove the key to use {}",
            dir.display().to_string(),
            other.name(),
            self.data.dataset.name(),
            self.data.dataset.name(),
            self.data.dataset.default_dir().display()
        ))
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
        if self.data.dataset == DatasetKind::ImageFolder {
            self.data.image_folder.validate("data.image_folder")?;
        }
        self.distill.validate("distill")?;
        if self.distill.needs_live_teacher() && self.teacher.cache.mode == CacheMode::Always {
            bail!("teacher.cache.mode = \"always\": cached logits belong to unmixed, unaugmented images, but distill.teacher_views = \"same\" or distill.mixup > 0 needs the teacher live on the student's batches (use mode = \"auto\")");
        }
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
        self.validate_outside_teacher()
    }

    /// A teacher from outside kd (TorchScript, ONNX): one teacher file, existing, and
    /// batches its own preprocessing can start from (pixels in [0, 1] at their size).
    fn validate_outside_teacher(&self) -> Result<()> {
        let t = &self.teacher;
        let files = [
            ("checkpoint", &t.checkpoint),
            ("torchscript", &t.torchscript),
            ("onnx", &t.onnx),
            ("logits", &t.logits),
        ];
        let mut given: Vec<&str> = files
            .iter()
            .filter(|(_, f)| f.is_some())
            .map(|(k, _)| *k)
            .collect();
        if !t.ensemble.is_empty() {
            given.push("ensemble");
        }
        if given.len() > 1 {
            bail!(
                "teacher.{}: expected one teacher file, got {}",
                given.join(" and teacher."),
                given.len()
            );
        }
        if t.class_map.is_some() && !t.is_outside() {
            bail!("teacher.class_map: expected a teacher from outside kd (teacher.source, onnx, torchscript or ensemble) whose classes it maps; this config's teacher has the dataset's own");
        }
        if let Some(file) = &t.logits {
            return self.validate_logits_file(file);
        }
        self.validate_ensemble()?;
        let (key, what) = match (&t.torchscript, &t.onnx) {
            (Some(_), _) => ("torchscript", "a file saved with torch.jit.save"),
            (_, Some(_)) => ("onnx", "an ONNX model file"),
            _ if !t.ensemble.is_empty() => ("ensemble", ""),
            _ => return Ok(()),
        };
        if let Some(file) = t.torchscript.as_ref().or(t.onnx.as_ref()) {
            if !file.is_file() {
                bail!("teacher.{key}: expected {what}, got {}", file.display());
            }
        }
        let tf = &self.data.transform;
        if !tf.mean.is_empty() || tf.pad_to.is_some() {
            bail!(
                "data.transform: expected no mean/std and no pad_to with a teacher from outside kd (its preprocessing is teacher.input's: mean, std, image_size, channels), got mean {:?}, pad_to {:?}",
                tf.mean,
                tf.pad_to
            );
        }
        Ok(())
    }

    /// An ensemble: existing member files, and weights a weighted mean can take.
    fn validate_ensemble(&self) -> Result<()> {
        let members = &self.teacher.ensemble;
        for m in members {
            if !m.source.is_file() {
                bail!(
                    "teacher.ensemble.source: expected a teacher file (.onnx, a kd .safetensors model, TorchScript), got {}",
                    m.source.display()
                );
            }
        }
        let weights: Vec<f64> = members.iter().map(|m| m.weight).collect();
        let sum: f64 = weights.iter().sum();
        if !members.is_empty()
            && (weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || sum.is_nan() || sum <= 0.0)
        {
            bail!("teacher.ensemble.weight: expected finite weights >= 0 summing to more than 0, got {weights:?}");
        }
        Ok(())
    }

    /// A teacher logits file: existing, and students that read cached logits (a live
    /// teacher cannot be replaced by a file).
    fn validate_logits_file(&self, file: &Path) -> Result<()> {
        if !file.is_file() {
            bail!(
                "teacher.logits: expected a teacher logits file (`kd-cli teach CONFIG --out FILE`), got {}",
                file.display()
            );
        }
        if !self.caches_teacher_logits() {
            bail!(
                "teacher.logits: the distilled student needs the teacher live (augmented batches, distill.teacher_views = \"same\", mixup, a feature loss (fitnets, at, rkd, crd, simkd) or teacher.cache.mode = \"never\"); a logits file teaches only from cached logits"
            );
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
    fn teacher_source_is_read_by_its_files_format_and_one_teacher_file_is_allowed() {
        let source = |file: &str| parse(&format!("[teacher]\nsource = \"{file}\"\n")).teacher;
        assert_eq!(source("t.onnx").onnx, Some(PathBuf::from("t.onnx")));
        assert_eq!(
            source("t.safetensors").checkpoint,
            Some("t.safetensors".into())
        );
        assert_eq!(source("t.pt").torchscript, Some(PathBuf::from("t.pt")));
        assert!(source("t.onnx").source.is_none() && source("t.onnx").is_outside());
        let both = RunConfig::parse(
            "[teacher]\nsource = \"a.onnx\"\nonnx = \"b.onnx\"\n",
            Path::new("test.toml"),
        );
        let message = format!("{:#}", both.unwrap_err());
        assert!(
            message.contains("teacher.source and teacher.onnx: expected one teacher file"),
            "{message}"
        );
        let two = parse("[teacher]\nonnx = \"Cargo.toml\"\ncheckpoint = \"Cargo.toml\"\n");
        let message = format!("{:#}", two.validate().unwrap_err());
        assert!(
            message
                .contains("teacher.checkpoint and teacher.onnx: expected one teacher file, got 2"),
            "{message}"
        );
        let missing = parse("[teacher]\nonnx = \"no-such.onnx\"\n");
        let message = format!("{:#}", missing.validate().unwrap_err());
        assert!(
            message.contains("teacher.onnx: expected an ONNX model file, got no-such.onnx"),
            "{message}"
        );
    }

    /// The config's teacher and student checked against its input shape, as a plan does.
    fn models_fit(cfg: &RunConfig) -> Result<()> {
        let [_, h, _] = cfg.data.input_shape();
        cfg.validate()?;
        cfg.teacher.model.validate("teacher.model", h)?;
        cfg.student.model.validate("student.model", h)?;
        Ok(())
    }

    #[test]
    fn the_built_in_defaults_fit_together_and_a_config_choosing_its_input_is_not_padded() {
        let lr_only = parse("[student.train]\nlr = 1\n");
        assert_eq!(lr_only.data.transform.pad_to, Some(32));
        models_fit(&lr_only).unwrap();
        // Round trip: the resolved config says what it got.
        assert_eq!(parse(&lr_only.to_toml().unwrap()), lr_only);
        for chooses in [
            "[data]\ndataset = \"fashion-mnist\"\n",
            "[student.model]\nkind = \"student\"\nblocks = 3\n",
        ] {
            let cfg = parse(chooses);
            assert_eq!(cfg.data.transform.pad_to, None, "{chooses}");
            assert_eq!(parse(&cfg.to_toml().unwrap()), cfg);
        }
        let set: Override = "data.dataset=cifar10".parse().unwrap();
        let cfg = RunConfig::parse_with("", Path::new("t.toml"), &[set]).unwrap();
        assert_eq!(cfg.data.transform.pad_to, None);
        let kept = parse("[data]\ndataset = \"mnist\"\n[data.transform]\npad_to = 32\n");
        assert_eq!(kept.data.transform.pad_to, Some(32));
    }

    #[test]
    fn the_printed_defaults_less_any_one_key_fit_or_fail_on_a_key_they_hold() {
        let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
        let mut refused = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            let Some((key, _)) = code.split_once(" = ").filter(|_| !code.starts_with('[')) else {
                continue;
            };
            let text: String = lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            // A section without its `kind` or `loss` is a parse error naming the section.
            let Ok(cfg) = RunConfig::parse(&text, Path::new("test.toml")) else {
                continue;
            };
            if let Err(e) = models_fit(&cfg) {
                let message = format!("{e:#}");
                let named = message.split(':').next().unwrap_or_default();
                let leaf = named.rsplit('.').next().unwrap_or_default();
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{leaf} = "))),
                    "without {key:?}: {message}"
                );
                refused.push(key.trim().to_string());
            }
        }
        // Without `pad_to` (the dataset named), the seed's 5 blocks do not fit 28x28.
        assert_eq!(refused, ["pad_to"]);
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
    fn the_commented_default_config_is_exactly_the_built_in_defaults() {
        let mut expected = RunConfig::default();
        expected.data.dir = Some(expected.data.dir());
        assert_eq!(parse(DEFAULT_CONFIG), expected);
        // Every key of the defaults is spelled out in the file (absent optional keys aside).
        fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    let path = format!("{prefix}{k}");
                    keys(v, &format!("{path}."), out);
                    out.push(path);
                }
            }
        }
        let (mut code, mut file) = (Vec::new(), Vec::new());
        keys(
            &toml::Value::try_from(RunConfig::default()).unwrap(),
            "",
            &mut code,
        );
        keys(&toml::from_str(DEFAULT_CONFIG).unwrap(), "", &mut file);
        let missing: Vec<_> = code.iter().filter(|k| !file.contains(k)).collect();
        assert!(missing.is_empty(), "default_config.toml lacks {missing:?}");
    }

    #[test]
    fn the_configuration_reference_holds_the_default_config_verbatim() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
        )
        .unwrap();
        assert!(
            doc.contains(&format!("```toml\n{DEFAULT_CONFIG}```")),
            "docs/configuration.md is out of date: paste `kd-cli config default` into its toml block"
        );
    }

    #[test]
    fn overrides_apply_in_order_and_keep_the_defaults_of_their_place() {
        let sets: Vec<Override> = [
            "teacher.train.epochs=3",
            "student.train.lr=3e-4",
            "name=my-run",
            "distill.loss=dkd",
            "data.transform.mean=[0.5]",
            "data.transform.std=[0.25]",
            "seed=7",
            "seed=8",
            // One key of a tagged section keeps the section's kind.
            "student.model.width=8",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let cfg = RunConfig::parse_with("seed = 1\n", Path::new("x.toml"), &sets).unwrap();
        assert_eq!(cfg.teacher.train.epochs, 3);
        assert_eq!(
            cfg.teacher.train.lr, 1e-5,
            "the teacher keeps its own default rate"
        );
        assert_eq!(cfg.student.train.lr, 3e-4);
        assert_eq!((cfg.name.as_str(), cfg.seed), ("my-run", 8));
        assert!(matches!(cfg.distill.loss, kd_core::LossConfig::Dkd(_)));
        assert_eq!(cfg.data.transform.mean, vec![0.5]);
        assert!(
            matches!(&cfg.student.model, ModelConfig::Student(s) if s.width == 8 && s.blocks == 5),
            "{:?}",
            cfg.student.model
        );
    }

    #[test]
    fn bad_overrides_name_the_key_and_what_was_expected() {
        let err = |set: &str| {
            let sets = [set.parse::<Override>().unwrap()];
            RunConfig::parse_with("", Path::new("x.toml"), &sets)
                .unwrap_err()
                .to_string()
        };
        let e = err("student.train.lrr=0.1");
        assert!(
            e.contains("--set student.train.lrr=0.1") && e.contains("lrr"),
            "{e}"
        );
        let e = err("device=tpu");
        assert!(
            e.contains("--set device=\"tpu\"") && e.contains("cuda"),
            "{e}"
        );
        let e = err("seed=-3");
        assert!(e.contains("--set seed=-3"), "{e}");
        assert!("student.train.lr"
            .parse::<Override>()
            .unwrap_err()
            .contains("KEY=VALUE"));
        assert!("a..b=1"
            .parse::<Override>()
            .unwrap_err()
            .contains("dotted key"));
    }

    #[test]
    fn only_an_override_that_changes_a_loss_or_kind_warns_about_dropped_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        // An integer where the config holds a float, and the old name of a key: neither is
        // dropped by anything.
        std::fs::write(
            &file,
            "[distill]\nalpha = 0.5\ntemperature = 4\nscale_by_t_squared = true\n",
        )
        .unwrap();
        let warnings = |sets: &[&str]| {
            let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
            RunConfig::load_with_warnings(&file, &sets).unwrap().1
        };
        assert_eq!(warnings(&[]), Vec::<String>::new());
        assert_eq!(warnings(&["distill.alpha=0.3"]), Vec::<String>::new());
        let w = warnings(&["distill.alpha=0.3", "distill.loss=dkd"]);
        assert!(
            w.iter().all(|w| w.contains("--set distill.loss=\"dkd\"")),
            "{w:?}"
        );
        // alpha was set explicitly; temperature 4 is dkd's default too; the T² key is gone.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("distill.scale_by_t_squared = true"),
            "{w:?}"
        );
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

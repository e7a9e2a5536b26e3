//! A model file written by `kd-cli run`, opened without its run config: the safetensors
//! header's `__metadata__` ([`kd_models::metadata`]) names the architecture, the input shape
//! as stored, the classes, the preprocessing and the dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_data::{DatasetKind, ImageFolderConfig, TransformConfig};
use kd_models::{Model, ModelConfig, Precision};
use tch::Device;

use crate::eval_precision::EvalPrecision;

/// Metadata keys.
const MODEL: &str = kd_models::metadata::MODEL_KEY;
const INPUT: &str = "kd.input_shape";
const CLASSES: &str = "kd.classes";
const TRANSFORM: &str = "kd.transform";
const DATASET: &str = "kd.dataset";
const CLASS_NAMES: &str = "kd.class_names";
const IMAGE_FOLDER: &str = "kd.image_folder";
const PRECISION: &str = "kd.precision";
const CHANNELS_LAST: &str = "kd.channels_last";
const DATA_DIR: &str = "kd.data_dir";

/// What a saved model is.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The architecture.
    pub model: ModelConfig,
    /// `[c, h, w]` of an image as the dataset stores it (before the transform).
    pub input_shape: [usize; 3],
    /// Number of classes (the model's outputs).
    pub classes: usize,
    /// The preprocessing the model was trained with.
    pub transform: TransformConfig,
    /// The dataset the model was trained on.
    pub dataset: DatasetKind,
    /// The class names in label order, where the data brought them (an image folder's
    /// folder names); the built-in datasets' names are kd's own.
    pub class_names: Option<Vec<String>>,
    /// How an image-folder dataset was decoded (so `eval` reads it the same way).
    pub image_folder: Option<ImageFolderConfig>,
    /// The arithmetic the run evaluated the model in (absent in older files: float32,
    /// NCHW), so that `eval` and `predict` reproduce the run's numbers.
    pub precision: Option<Precision>,
    /// Whether the run computed in channels-last (NHWC) memory format; `None` in older
    /// files (NCHW).
    pub channels_last: Option<bool>,
    /// The data directory the run read, as an absolute path, where it is not the dataset's
    /// default directory (an image folder's, say); `eval` and `export` read it unless
    /// `--data` names another.
    pub data_dir: Option<PathBuf>,
}

impl ModelInfo {
    /// The metadata entries that describe the model.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let json = |v: serde_json::Value| v.to_string();
        BTreeMap::from([
            (
                MODEL.into(),
                json(serde_json::to_value(&self.model).expect("config serializes")),
            ),
            (INPUT.into(), json(serde_json::json!(self.input_shape))),
            (CLASSES.into(), self.classes.to_string()),
            (
                TRANSFORM.into(),
                json(serde_json::to_value(&self.transform).expect("config serializes")),
            ),
            (
                DATASET.into(),
                json(serde_json::to_value(self.dataset).expect("enum serializes")),
            ),
        ])
        .into_iter()
        .chain(
            self.class_names
                .as_ref()
                .map(|names| (CLASS_NAMES.into(), json(serde_json::json!(names)))),
        )
        .chain(self.image_folder.as_ref().map(|f| {
            let value = serde_json::to_value(f).expect("config serializes");
            (IMAGE_FOLDER.into(), json(value))
        }))
        .chain(
            self.precision
                .map(|p| (PRECISION.into(), json(serde_json::json!(p)))),
        )
        .chain(
            self.channels_last
                .map(|c| (CHANNELS_LAST.into(), json(serde_json::json!(c)))),
        )
        .chain(
            self.data_dir
                .as_ref()
                .map(|d| (DATA_DIR.into(), json(serde_json::json!(d)))),
        )
        .collect()
    }

    /// The data directory to read: `given` (`--data`), else the one the run read, else
    /// the dataset's default; with a note saying which, for errors.
    pub fn data_dir(&self, given: Option<PathBuf>) -> (PathBuf, String) {
        match (given, &self.data_dir) {
            (Some(dir), _) => (dir, "--data".into()),
            (None, Some(dir)) => (
                dir.clone(),
                "the directory the model was trained on, recorded in its file; --data names another".into(),
            ),
            (None, None) => (
                self.dataset.default_dir(),
                format!(
                    "the default directory of {}; --data names another",
                    self.dataset.name()
                ),
            ),
        }
    }

    /// Reads the dataset of [`ModelInfo::data_dir`]; an error says where the directory came
    /// from.
    pub fn load_data(&self, given: Option<PathBuf>) -> Result<(PathBuf, kd_data::Splits)> {
        let (dir, from) = self.data_dir(given);
        let folder = self.image_folder.clone().unwrap_or_default();
        let splits = self
            .dataset
            .load(&dir, &folder)
            .with_context(|| format!("{} ({from})", dir.display()))?;
        Ok((dir, splits))
    }

    /// The class names in label order: the data's own, the dataset's, or the indices.
    pub fn class_labels(&self) -> Vec<String> {
        class_labels(self.dataset, self.class_names.as_deref(), self.classes)
    }

    /// Reads the metadata of `path`; a missing file, a file of another format and a
    /// training checkpoint are each named with what was expected and where to find it.
    pub fn read(path: &Path) -> Result<Self> {
        const EXPECTED: &str = "expected a model file of a run directory, e.g. runs/quickstart/seed-19/distilled.safetensors";
        if !path.exists() {
            bail!("{}: no such file ({EXPECTED})", path.display());
        }
        if path.is_dir() {
            bail!("{}: a directory ({EXPECTED})", path.display());
        }
        let meta = kd_models::metadata::read_metadata(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a kd model file: {} ({EXPECTED})",
                path.display(),
                e.to_string()
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&e.to_string())
            )
        })?;
        if meta.contains_key(kd_train::state::STATE_KEY) {
            let best = path.with_file_name("best.safetensors");
            bail!(
                "{}: a training checkpoint (what --resume continues from), not a model file: use {} (the best epoch's model) or the run directory's <model>.safetensors",
                path.display(),
                best.display()
            );
        }
        if !meta.contains_key(MODEL) {
            bail!(
                "{}: a safetensors file without kd's model metadata (architecture, classes, preprocessing), so kd cannot rebuild the model: {EXPECTED}",
                path.display()
            );
        }
        Self::from_metadata(path, &meta)
    }

    /// The description in `meta` (a model file's metadata; `path` is named in errors).
    pub fn from_metadata(path: &Path, meta: &BTreeMap<String, String>) -> Result<Self> {
        let model = field(path, meta, MODEL)?;
        let input_shape = field(path, meta, INPUT)?;
        let classes = field(path, meta, CLASSES)?;
        let transform = field(path, meta, TRANSFORM)?;
        let dataset = field(path, meta, DATASET)?;
        Ok(Self {
            model,
            input_shape,
            classes,
            transform,
            dataset,
            class_names: optional_field(path, meta, CLASS_NAMES)?,
            image_folder: optional_field(path, meta, IMAGE_FOLDER)?,
            precision: optional_field(path, meta, PRECISION)?,
            channels_last: optional_field(path, meta, CHANNELS_LAST)?,
            data_dir: optional_field(path, meta, DATA_DIR)?,
        })
    }
}

/// A metadata entry kd writes only for some models (absent: `None`).
fn optional_field<T: serde::de::DeserializeOwned>(
    path: &Path,
    meta: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>> {
    meta.contains_key(key)
        .then(|| field(path, meta, key))
        .transpose()
}

/// One metadata entry, decoded from its JSON text.
fn field<T: serde::de::DeserializeOwned>(
    path: &Path,
    meta: &BTreeMap<String, String>,
    key: &str,
) -> Result<T> {
    let raw = meta
        .get(key)
        .with_context(|| format!("{}: metadata lacks {key}", path.display()))?;
    serde_json::from_str(raw).with_context(|| {
        format!(
            "{}: metadata {key} = {raw:?} is not what kd wrote",
            path.display()
        )
    })
}

/// Opens a saved model on `device`: reads its metadata, builds the architecture and loads
/// the weights (strictly: a file of another architecture is an error naming it).
pub fn open(path: &Path, device: Device) -> Result<(Model, ModelInfo)> {
    let info = ModelInfo::read(path)?;
    let [c, _, _] = info.input_shape;
    let [_, h, _] = info.transform.output_shape(info.input_shape);
    let mut model = Model::new(&info.model.without_pretrained(), c, h, info.classes, device)
        .with_context(|| {
            format!(
                "{}: cannot build the model its metadata describes",
                path.display()
            )
        })?;
    model.load(path)?;
    Ok((model, info))
}

/// [`open`], then `precision` (resolved against the precision the file records) and the
/// memory format the run evaluated the model in: what `eval` and `predict` use, so that they
/// reproduce the run's test accuracy in either precision. (Exports take [`open`]'s float32
/// model.)
pub fn open_in(
    path: &Path,
    device: Device,
    precision: EvalPrecision,
) -> Result<(Model, ModelInfo)> {
    let (mut model, info) = open(path, device)?;
    let precision = precision.resolve(info.precision);
    model
        .set_precision(precision)
        .with_context(|| format!("{}: precision {}", path.display(), precision.name()))?;
    if info.channels_last == Some(true) {
        model.use_channels_last();
    }
    Ok((model, info))
}

/// [`open_in`] the precision the run trained and evaluated the model in (what
/// `bench --mode latency` times).
pub fn open_as_trained(path: &Path, device: Device) -> Result<(Model, ModelInfo)> {
    open_in(path, device, EvalPrecision::Run)
}

/// Class names: the data's own (`names`), else `dataset`'s, else the indices.
pub fn class_labels(
    dataset: kd_data::DatasetKind,
    names: Option<&[String]>,
    classes: usize,
) -> Vec<String> {
    if let Some(names) = names.filter(|n| n.len() == classes) {
        return names.to_vec();
    }
    match dataset.class_names() {
        Some(names) if names.len() == classes => names.iter().map(|s| s.to_string()).collect(),
        _ => (0..classes).map(|i| i.to_string()).collect(),
    }
}

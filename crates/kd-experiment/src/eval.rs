//! `kd-cli eval MODEL`: a saved model's accuracy on a dataset split, its accuracy per class
//! and its confusion matrix (rows: true class, columns: predicted class). The model file's
//! metadata says which dataset, preprocessing and architecture ([`crate::saved_model`]); an
//! `.onnx` file exported by kd runs in tract ([`crate::onnx_model`]); a TorchScript teacher
//! is evaluated through its run config ([`crate::eval_torchscript`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kd_data::{BatchLoader, ImageDataset};
use serde::Serialize;
use tch::Device;

use crate::eval_precision::EvalPrecision;
use crate::onnx_model::OpenedModel;

/// What `eval` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The model file, as given.
    pub model: String,
    /// The dataset's name, e.g. `fashion-mnist`.
    pub dataset: String,
    /// The directory the images were read from.
    pub data_dir: String,
    /// The split evaluated: `test` or `train`.
    pub split: String,
    /// Images in the split.
    pub images: usize,
    /// Top-1 accuracy, a fraction in [0, 1].
    pub accuracy: f64,
    /// The arithmetic of a `.safetensors` model's evaluation (`f32`, `bf16`, `f16`); `None`
    /// for an ONNX file, which computes as it was written (float32 or int8).
    pub precision: Option<String>,
    /// Class names (or indices) in label order.
    pub classes: Vec<String>,
    /// Accuracy of the images of each true class.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<i64>>,
}

/// Evaluates the model at `model_path` in `precision` on `split` (`test` or `train`) of its
/// dataset, read from `data_dir` (default: the directory the run read, as the model file
/// records it, or the dataset's default directory).
pub fn eval(
    model_path: &Path,
    data_dir: Option<PathBuf>,
    split: &str,
    device: Device,
    precision: EvalPrecision,
) -> Result<EvalReport> {
    let (model, info) = crate::onnx_model::open_any(model_path, device, 100, precision)?;
    let (dir, splits) = info.load_data(data_dir)?;
    let data: ImageDataset = match split {
        "test" => splits.test,
        "train" => splits.train,
        other => bail!("--split: expected test or train, got {other:?}"),
    };
    if data.image_shape() != info.input_shape {
        bail!(
            "{}: images are {:?}, but {} was trained on {:?}",
            dir.display(),
            data.image_shape(),
            model_path.display(),
            info.input_shape
        );
    }
    let precision = match &model {
        OpenedModel::Torch(m) => Some(m.precision().name().to_string()),
        OpenedModel::Onnx(_) => None,
    };
    let (accuracy, confusion) = match model {
        OpenedModel::Torch(model) => {
            let loader = BatchLoader::new(&data, 1000, info.transform.clone(), device);
            let (evaluation, confusion) = kd_train::evaluate_with_confusion(
                &model,
                &loader,
                &kd_train::Objective::CrossEntropy,
                kd_train::Split::Validation,
                info.classes,
            )?;
            (evaluation.accuracy, confusion)
        }
        OpenedModel::Onnx(onnx) => onnx.evaluate(&data)?,
    };
    let per_class_accuracy = per_class_accuracy(&confusion);
    let classes = info.class_labels();
    Ok(EvalReport {
        model: model_path.display().to_string(),
        dataset: info.dataset.name().into(),
        data_dir: dir.display().to_string(),
        split: split.into(),
        images: data.len(),
        accuracy,
        precision,
        classes,
        per_class_accuracy,
        confusion,
    })
}

/// Each true class's accuracy from `confusion[true][predicted]`.
pub fn per_class_accuracy(confusion: &[Vec<i64>]) -> Vec<f64> {
    confusion
        .iter()
        .enumerate()
        .map(|(i, row)| row[i] as f64 / row.iter().sum::<i64>().max(1) as f64)
        .collect()
}

impl EvalReport {
    /// The report as text: accuracy, then one row per class with its accuracy and its row
    /// of the confusion matrix.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: accuracy {:.2}%{} on {} {} images of {} ({})\n\n",
            self.model,
            100.0 * self.accuracy,
            match self.precision.as_deref() {
                Some(p) if p != "f32" => format!(" in {p}"),
                _ => String::new(),
            },
            self.images,
            self.split,
            self.dataset,
            self.data_dir
        );
        let labels: Vec<String> = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{i} {name}"))
            .collect();
        let width = labels.iter().map(String::len).max().unwrap_or(5).max(5);
        out += &format!(
            "{:<width$}  {:>8}  confusion: row = true class, column = predicted\n",
            "class", "accuracy"
        );
        out += &format!("{:<width$}  {:>8}  ", "", "");
        out += &(0..self.classes.len())
            .map(|j| format!("{j:>6}"))
            .collect::<String>();
        out.push('\n');
        for (i, label) in labels.iter().enumerate() {
            out += &format!(
                "{label:<width$}  {:>7.2}%  ",
                100.0 * self.per_class_accuracy[i]
            );
            out += &self.confusion[i]
                .iter()
                .map(|c| format!("{c:>6}"))
                .collect::<String>();
            out.push('\n');
        }
        out
    }
}

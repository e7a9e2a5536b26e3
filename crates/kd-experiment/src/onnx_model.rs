//! An ONNX file exported by kd, opened for `eval` and `predict` without libtorch: tract
//! ([`kd_onnx::runtime`]) runs it, and its metadata properties carry the same description
//! as a safetensors model file's header ([`crate::saved_model`]). The file has its
//! preprocessing built in, so it takes images scaled to [0, 1] and nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use kd_data::ImageDataset;
use kd_onnx::runtime::{read_header, OnnxRunner};
use ndarray::{ArrayView4, Axis, Slice};
use tch::{Kind, Tensor};

use crate::eval_precision::EvalPrecision;
use crate::saved_model::ModelInfo;

/// A model file opened for `eval` or `predict`: a `.safetensors` model in libtorch or an
/// `.onnx` file in tract.
#[derive(Debug)]
pub enum OpenedModel {
    /// A `.safetensors` model file, in libtorch.
    Torch(kd_models::Model),
    /// An `.onnx` file, in tract.
    Onnx(OnnxModel),
}

/// Opens `path` by its extension: an ONNX file for batches of `onnx_batch` (it computes in
/// float32), any other as a `kd-cli run` model file on `device` computing in `precision`.
pub fn open_any(
    path: &Path,
    device: tch::Device,
    onnx_batch: usize,
    precision: EvalPrecision,
) -> Result<(OpenedModel, ModelInfo)> {
    if is_onnx(path) {
        if precision != EvalPrecision::F32 {
            anyhow::bail!(
                "{}: an ONNX file computes in float32; --precision applies to .safetensors model files",
                path.display()
            );
        }
        let model = OnnxModel::open(path, onnx_batch)?;
        let info = model.info.clone();
        Ok((OpenedModel::Onnx(model), info))
    } else {
        let (model, info) = crate::saved_model::open_in(path, device, precision)?;
        Ok((OpenedModel::Torch(model), info))
    }
}

/// Stored `u8` images as the floats in [0, 1] an exported file takes, in the same order.
pub fn unit_pixels(images: ArrayView4<u8>) -> Vec<f32> {
    images.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// Whether `path` names an ONNX file (by its extension).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// A kd ONNX file ready to run in batches of up to `batch` images.
#[derive(Debug)]
pub struct OnnxModel {
    runner: OnnxRunner,
    /// The model the file's metadata describes.
    pub info: ModelInfo,
}

impl OnnxModel {
    /// Opens the ONNX file at `path`; an error names a file that is not ONNX or not kd's.
    pub fn open(path: &Path, batch: usize) -> Result<Self> {
        let header = read_header(path)?;
        let meta: BTreeMap<String, String> = header.metadata.into_iter().collect();
        let info = ModelInfo::from_metadata(path, &meta).with_context(|| {
            format!(
                "{}: an ONNX file without kd's metadata (written by `kd-cli export --format onnx`)",
                path.display()
            )
        })?;
        let runner = OnnxRunner::load(path, batch)?;
        Ok(Self { runner, info })
    }

    /// Logits `[n, classes]` for `u8` images `[n, c, h, w]` as the dataset stores them.
    pub fn logits(&self, images: ArrayView4<u8>) -> Result<Tensor> {
        let n = images.shape()[0];
        let mut out = Vec::with_capacity(n * self.info.classes);
        let step = self.runner.batch();
        for start in (0..n).step_by(step) {
            let chunk = images.slice_axis(Axis(0), Slice::from(start..(start + step).min(n)));
            out.extend(self.runner.run(&unit_pixels(chunk), chunk.shape()[0])?);
        }
        Ok(Tensor::from_slice(&out).view([n as i64, self.info.classes as i64]))
    }

    /// Accuracy and confusion matrix (`[true][predicted]`) on `data`.
    pub fn evaluate(&self, data: &ImageDataset) -> Result<(f64, Vec<Vec<i64>>)> {
        let classes = self.info.classes;
        let predicted = self.logits(data.images().view())?.argmax(-1, false);
        let predicted = Vec::<i64>::try_from(&predicted.to_kind(Kind::Int64))?;
        let mut confusion = vec![vec![0i64; classes]; classes];
        let mut correct = 0usize;
        for (&label, &p) in data.labels().iter().zip(&predicted) {
            let label = label as usize;
            if label < classes {
                confusion[label][p as usize] += 1;
                correct += usize::from(label == p as usize);
            }
        }
        let labelled: i64 = confusion.iter().flatten().sum();
        Ok((correct as f64 / labelled.max(1) as f64, confusion))
    }
}

//! `kd-cli export MODEL --format onnx [--quantize int8]`: an ONNX file written by kd itself
//! ([`kd_onnx`]), preprocessing built in, the model's description and class names in its
//! metadata properties. With `--quantize int8` the file is statically quantized (QDQ,
//! per-channel int8 weights, uint8 activations calibrated on the first N training images).
//! The export then evaluates what it wrote on the test set with tract and prints the file
//! sizes and accuracies, float next to int8.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_data::ImageDataset;
use kd_onnx::runtime::read_header;
use kd_onnx::{quantize, write, Calibration, Preprocess};
use ndarray::{Axis, Slice};
use tch::{Device, Tensor};

use crate::onnx_model::OnnxModel;
use crate::saved_model::ModelInfo;

/// What `--quantize` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Quantize {
    /// Static int8 (QDQ): int8 weights per channel, uint8 activations per tensor.
    Int8,
}

/// Training images that calibrate int8 activation ranges unless `--calibration-images` says.
pub const DEFAULT_CALIBRATION_IMAGES: usize = 1000;

/// How to export to ONNX.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// `Some(Int8)`: a statically quantized file; `None`: float32.
    pub quantize: Option<Quantize>,
    /// Training images that calibrate the activation ranges (int8 only); `None`: the first
    /// [`DEFAULT_CALIBRATION_IMAGES`], or all of them where there are fewer.
    pub calibration_images: Option<usize>,
    /// The dataset's directory (default: where `cargo xtask fetch-data` puts it).
    pub data: Option<PathBuf>,
}

/// One exported file: its size, the bytes of its tensors, and its test accuracy.
#[derive(Debug, Clone)]
pub struct ExportedFile {
    /// `float32` or `int8`.
    pub label: &'static str,
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// Bytes of its constant tensors (weights, scales), without the graph.
    pub tensor_bytes: u64,
    /// `None` when the test set could not be read.
    pub accuracy: Option<f64>,
}

/// The export's summary, printed by `kd-cli export`.
#[derive(Debug, Clone)]
pub struct OnnxExport {
    /// The ONNX file written.
    pub out: PathBuf,
    /// The float32 file, then the int8 one when quantized (the float32 file is then a
    /// temporary copy, measured for comparison).
    pub files: Vec<ExportedFile>,
    /// Training images that calibrated the int8 activations; `None` for a float32 export.
    pub calibration_images: Option<usize>,
    /// Why accuracies are missing, if they are.
    pub note: Option<String>,
}

impl OnnxExport {
    /// The summary as text: the file written, each file's sizes and test accuracy, and int8
    /// against float32 when quantized.
    pub fn text(&self) -> String {
        let mut out = format!("wrote {} (ONNX opset {}", self.out.display(), write::OPSET);
        if let Some(n) = self.calibration_images {
            out += &format!(", int8 QDQ calibrated on {n} training images");
        }
        out += "; input `images`: float [batch, c, h, w] in [0, 1]; output `logits`)\n";
        out += &format!(
            "{:<12} {:>12} {:>14} {:>14}\n",
            "model", "file bytes", "tensor bytes", "test accuracy"
        );
        for f in &self.files {
            let acc = f
                .accuracy
                .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
            out += &format!(
                "{:<12} {:>12} {:>14} {:>14}\n",
                f.label, f.bytes, f.tensor_bytes, acc
            );
        }
        if let [float, int8] = self.files.as_slice() {
            out += &format!(
                "int8 / float: file {:.1}%, tensors {:.1}%",
                100.0 * int8.bytes as f64 / float.bytes as f64,
                100.0 * int8.tensor_bytes as f64 / float.tensor_bytes as f64
            );
            if let (Some(a), Some(b)) = (float.accuracy, int8.accuracy) {
                out += &format!(", accuracy {:+.2} points", 100.0 * (b - a));
            }
            out.push('\n');
        }
        if let Some(note) = &self.note {
            out += &format!("{note}\n");
        }
        out
    }
}

/// The metadata properties of an exported file: the safetensors file's description, the
/// class names in label order, and how the file was made.
fn metadata(info: &ModelInfo, format: &str) -> Vec<(String, String)> {
    let mut meta: Vec<(String, String)> = info.to_metadata().into_iter().collect();
    let names = serde_json::to_string(&info.class_labels()).expect("strings serialize");
    meta.push(("class_names".into(), names));
    meta.push(("kd.format".into(), format.into()));
    meta
}

/// Exports the model at `model_path` to `out` as ONNX.
pub fn export_onnx(model_path: &Path, out: &Path, options: &OnnxOptions) -> Result<OnnxExport> {
    if options.quantize.is_some() && options.calibration_images == Some(0) {
        bail!("--calibration-images: expected at least 1 training image, got 0");
    }
    if out.file_name().is_none() {
        bail!("--out: expected a file path, got {}", out.display());
    }
    let (model, info) = crate::saved_model::open(model_path, Device::Cpu)?;
    let preprocess = Preprocess {
        image_shape: info.input_shape,
        pad_to: info.transform.pad_to,
        mean: info.transform.mean.clone(),
        std: info.transform.std.clone(),
    };
    let graph = kd_onnx::lower(
        &info.model,
        &model.var_store().variables(),
        &preprocess,
        info.classes,
    )
    .with_context(|| format!("{}: cannot export", model_path.display()))?;
    let version = env!("CARGO_PKG_VERSION");
    let float = write::encode(&graph, None, &metadata(&info, "float32"), version);
    let (data_dir, _) = info.data_dir(options.data.clone());
    let splits = info.load_data(options.data.clone()).map(|(_, s)| s);
    if options.quantize.is_none() {
        crate::atomic::write_atomic(out, &float)?;
        let (test, note) = match splits {
            Ok(s) => (Some(s.test), None),
            Err(e) => (None, Some(format!("test accuracy not measured: {e:#}"))),
        };
        let file = measure(out, "float32", test.as_ref())?;
        return Ok(OnnxExport {
            out: out.to_path_buf(),
            files: vec![file],
            calibration_images: None,
            note,
        });
    }
    let splits = splits.with_context(|| {
        format!(
            "int8 calibration needs the training images of {} (--data)",
            info.dataset.name()
        )
    })?;
    let n = calibration_count(options.calibration_images, splits.train.len(), &data_dir)?;
    let calibration = Calibration::run(&graph, calibration_batches(&splits.train, n));
    let plan = quantize::plan(&graph, &calibration);
    if let Some((value, op)) = quantize::uncovered(&graph, &plan).first() {
        bail!("--quantize int8: the quantizer does not cover the input of {op} (value {value}) of this model");
    }
    let meta = metadata(&info, &format!("int8 QDQ, {n} calibration images"));
    let int8 = write::encode(&graph, Some(&plan), &meta, version);
    crate::atomic::write_atomic(out, &int8)?;
    // The float file is measured from a temporary copy beside the output.
    let float_file = tempfile::Builder::new()
        .suffix(".onnx")
        .tempfile_in(
            out.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .context("cannot write a temporary float file to compare with")?;
    std::fs::write(float_file.path(), &float)?;
    let files = vec![
        measure(float_file.path(), "float32", Some(&splits.test))?,
        measure(out, "int8", Some(&splits.test))?,
    ];
    Ok(OnnxExport {
        out: out.to_path_buf(),
        files,
        calibration_images: Some(n),
        note: None,
    })
}

/// How many of the `available` training images (in `data_dir`) calibrate: the `requested`
/// number, at most `available`; by default [`DEFAULT_CALIBRATION_IMAGES`] or all of them.
fn calibration_count(requested: Option<usize>, available: usize, data_dir: &Path) -> Result<usize> {
    match requested {
        None => Ok(DEFAULT_CALIBRATION_IMAGES.min(available)),
        Some(n) if n > available => bail!(
            "--calibration-images: expected at most {available} (the training images of {}), got {n}",
            data_dir.display()
        ),
        Some(n) => Ok(n),
    }
}

/// The first `n` training images, scaled to [0, 1], in batches of 100.
fn calibration_batches(train: &ImageDataset, n: usize) -> impl Iterator<Item = Tensor> + '_ {
    (0..n).step_by(100).map(move |start| {
        let chunk = train
            .images()
            .slice_axis(Axis(0), Slice::from(start..(start + 100).min(n)));
        let shape: Vec<i64> = chunk.shape().iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&crate::onnx_model::unit_pixels(chunk)).view(shape.as_slice())
    })
}

/// The size, tensor bytes and test accuracy (when `test` is given) of the file at `path`.
fn measure(path: &Path, label: &'static str, test: Option<&ImageDataset>) -> Result<ExportedFile> {
    let bytes = std::fs::metadata(path)?.len();
    let tensor_bytes = read_header(path)?.tensor_bytes;
    let accuracy = match test {
        Some(test) => Some(OnnxModel::open(path, 100)?.evaluate(test)?.0),
        None => None,
    };
    Ok(ExportedFile {
        label,
        bytes,
        tensor_bytes,
        accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_takes_at_most_the_training_images_there_are() {
        let dir = Path::new("images");
        assert_eq!(calibration_count(None, 60_000, dir).unwrap(), 1000);
        assert_eq!(calibration_count(None, 240, dir).unwrap(), 240);
        assert_eq!(calibration_count(Some(50), 240, dir).unwrap(), 50);
        let err = calibration_count(Some(500), 240, dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected at most 240 (the training images of images), got 500"),
            "{err}"
        );
    }
}

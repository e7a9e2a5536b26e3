//! `kd-cli predict MODEL IMAGE...`: the top-k classes of each image (PNG, JPEG, BMP, TGA —
//! what stb_image reads) under a model saved by `kd-cli run`. Images are read as RGB bytes,
//! reduced to gray (ITU-R BT.601 luma) for one-channel models, resized (stb_image_resize) to
//! the dataset's image size when they differ, then preprocessed exactly as in training.
//! They should look like the dataset's images: Fashion-MNIST is a light garment on black.
//! An `.onnx` file exported by kd runs in tract, its preprocessing built in.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::eval_precision::EvalPrecision;
use crate::onnx_model::OpenedModel;

/// The prediction for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The image file, as given.
    pub image: String,
    /// `(class name, probability)`, most probable first.
    pub top: Vec<(String, f64)>,
}

/// `[c, h, w]` u8 image in the model's channel count and size.
fn read_image(path: &Path, [c, h, w]: [usize; 3]) -> Result<Tensor> {
    if !path.is_file() {
        bail!("{}: no such image file", path.display());
    }
    let rgb = tch::vision::image::load(path).map_err(|e| {
        anyhow::anyhow!(
            "{}: not an image stb_image can read (PNG, JPEG, BMP, TGA): {}",
            path.display(),
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let (_, ih, iw) = rgb.size3().context("image is [c, h, w]")?;
    let rgb = if (ih, iw) == (h as i64, w as i64) {
        rgb
    } else {
        tch::vision::image::resize(&rgb, w as i64, h as i64)
            .with_context(|| format!("{}: cannot resize to {w}x{h}", path.display()))?
    };
    Ok(match c {
        3 => rgb,
        1 => {
            let luma = Tensor::from_slice(&[0.299f32, 0.587, 0.114]).view([3, 1, 1]);
            (rgb.to_kind(Kind::Float) * luma)
                .sum_dim_intlist([0i64].as_slice(), true, Kind::Float)
                .round()
                .clamp(0.0, 255.0)
                .to_kind(Kind::Uint8)
        }
        other => bail!("model expects {other}-channel images; only 1 and 3 are supported"),
    })
}

/// The predictions for the images that could be read, and an error for each that could not.
#[derive(Debug)]
pub struct Predictions {
    /// One prediction per readable image, in the order given.
    pub predicted: Vec<Prediction>,
    /// One line per unreadable image, naming it.
    pub failed: Vec<String>,
}

/// Top-`k` classes of every readable image under the model at `model_path`, computed in
/// `precision`; images that cannot be read are reported in [`Predictions::failed`], not fatal.
pub fn predict(
    model_path: &Path,
    images: &[PathBuf],
    k: usize,
    device: Device,
    precision: EvalPrecision,
) -> Result<Predictions> {
    if images.is_empty() {
        bail!("expected at least one IMAGE");
    }
    if k == 0 {
        bail!("--top-k: expected at least 1 class per image, got 0");
    }
    let (model, info) = crate::onnx_model::open_any(model_path, device, images.len(), precision)?;
    let mut batch = Vec::new();
    let mut read = Vec::new();
    let mut failed = Vec::new();
    for path in images {
        match read_image(path, info.input_shape) {
            Ok(image) => {
                batch.push(image);
                read.push(path);
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if batch.is_empty() {
        return Ok(Predictions {
            predicted: Vec::new(),
            failed,
        });
    }
    let stacked = Tensor::stack(&batch, 0);
    let logits = match &model {
        OpenedModel::Torch(model) => {
            let x = info.transform.apply(&stacked.to_device(device));
            tch::no_grad(|| model.forward_t(&x, false)).to_device(Device::Cpu)
        }
        OpenedModel::Onnx(model) => {
            let shape: Vec<usize> = stacked.size().iter().map(|&d| d as usize).collect();
            let bytes = Vec::<u8>::try_from(&stacked.flatten(0, -1))?;
            let images =
                ndarray::Array4::from_shape_vec([shape[0], shape[1], shape[2], shape[3]], bytes)?;
            model.logits(images.view())?
        }
    };
    let probs = logits.softmax(-1, Kind::Float);
    let k = k.min(info.classes);
    let (values, indices) = probs.topk(k as i64, -1, true, true);
    let names = info.class_labels();
    let predicted = read
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let p: Vec<f64> = Vec::try_from(values.get(i as i64).to_kind(Kind::Double))?;
            let idx: Vec<i64> = Vec::try_from(indices.get(i as i64))?;
            Ok(Prediction {
                image: path.display().to_string(),
                top: idx
                    .iter()
                    .zip(p)
                    .map(|(&c, p)| (names[c as usize].clone(), p))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Predictions { predicted, failed })
}

/// One line per image: `path: class (p) , class (p), ...`.
pub fn text(predictions: &[Prediction]) -> String {
    predictions
        .iter()
        .map(|p| {
            let top: Vec<String> = p
                .top
                .iter()
                .map(|(c, prob)| format!("{c} {:.1}%", 100.0 * prob))
                .collect();
            format!("{}: {}\n", p.image, top.join(", "))
        })
        .collect()
}

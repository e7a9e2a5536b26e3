//! Per-batch image transforms: u8 → f32 scaled by 1/255, optional zero padding to a square
//! size (e.g. Fashion-MNIST's 28x28 → 32x32, the input size of the seed's CIFAR-10 models),
//! optional per-channel normalization `(x - mean) / std`.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{DataError, Result};

/// How a batch of `u8` images becomes the model's float input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformConfig {
    /// Zero-pad (in pixel space, before normalization) to `pad_to x pad_to`; centred.
    pub pad_to: Option<usize>,
    /// Per-channel mean subtracted after scaling to [0, 1]; empty means no normalization.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation, same length as `mean`.
    pub std: Vec<f64>,
}

impl Default for TransformConfig {
    /// The seed's preprocessing: pixels divided by 255, nothing else.
    fn default() -> Self {
        Self {
            pad_to: None,
            mean: Vec::new(),
            std: Vec::new(),
        }
    }
}

impl TransformConfig {
    /// Checks the values against an image shape `[c, h, w]`; `key` prefixes error messages.
    pub fn validate(&self, key: &str, image_shape: [usize; 3]) -> Result<()> {
        let [c, h, w] = image_shape;
        let invalid = |field: &str, expected: String, got: String| DataError::InvalidConfig {
            key: format!("{key}.{field}"),
            expected,
            got,
        };
        if let Some(p) = self.pad_to {
            if p < h || p < w {
                return Err(invalid(
                    "pad_to",
                    format!("a size >= the image size {h}x{w}"),
                    p.to_string(),
                ));
            }
        }
        if self.mean.len() != self.std.len() || !(self.mean.is_empty() || self.mean.len() == c) {
            return Err(invalid(
                "mean/std",
                format!("both empty or both of length {c} (one per channel)"),
                format!("lengths {} and {}", self.mean.len(), self.std.len()),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| s.is_nan() || **s <= 0.0) {
            return Err(invalid("std", "values > 0".into(), s.to_string()));
        }
        Ok(())
    }

    /// The `[c, h, w]` shape that images have after this transform.
    pub fn output_shape(&self, image_shape: [usize; 3]) -> [usize; 3] {
        match self.pad_to {
            Some(p) => [image_shape[0], p, p],
            None => image_shape,
        }
    }

    /// Applies the transform to a `[b, c, h, w]` tensor of kind `Uint8`, returning `Float`.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        self.apply_unit(&(images.to_kind(Kind::Float) / 255.0))
    }

    /// Applies the transform to float images already scaled to [0, 1] (zero padding there is
    /// the same as zero padding the bytes); this is what an exported model has built in.
    pub fn apply_unit(&self, images: &Tensor) -> Tensor {
        let (_, _, h, w) = images.size4().expect("batch of images is 4-D");
        let x = match self.pad_to {
            Some(p) => {
                let (top, left) = ((p as i64 - h) / 2, (p as i64 - w) / 2);
                let (bottom, right) = (p as i64 - h - top, p as i64 - w - left);
                images.constant_pad_nd([left, right, top, bottom])
            }
            None => images.shallow_clone(),
        };
        if self.mean.is_empty() {
            return x;
        }
        let c = self.mean.len() as i64;
        let mean = Tensor::from_slice(&self.mean)
            .to_kind(Kind::Float)
            .view([1, c, 1, 1])
            .to_device(x.device());
        let std = Tensor::from_slice(&self.std)
            .to_kind(Kind::Float)
            .view([1, c, 1, 1])
            .to_device(x.device());
        (x - mean) / std
    }
}

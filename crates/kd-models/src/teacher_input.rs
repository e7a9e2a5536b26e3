//! A teacher's input contract (`[teacher.input]`) and the bridge that meets it: kd's batches
//! hold pixels scaled to [0, 1] at the dataset's channels and size; a teacher trained
//! elsewhere expects its own — a torchvision or timm model 3 channels at 224x224 normalized
//! with ImageNet's mean and std. The bridge converts the channels (grey to colour by
//! repeating the channel; colour to grey by ITU-R BT.601 luma, `0.299 R + 0.587 G +
//! 0.114 B`, as PIL's `convert("L")`), resizes (bilinear, as torchvision's `Resize`, or
//! nearest) and normalizes, in that order, on the batch's device.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};

/// What a teacher trained outside kd expects as input (`[teacher.input]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherInput {
    /// Per-channel mean subtracted after scaling to [0, 1] (empty: none).
    pub mean: Vec<f64>,
    /// Per-channel standard deviation divided by (as many as `mean`).
    pub std: Vec<f64>,
    /// Side the teacher was trained on (0: the images' own size).
    pub image_size: usize,
    /// Channels the teacher takes (0: the images' own): 3 for grey images repeats the
    /// channel, 1 for colour images takes their luma.
    #[serde(skip_serializing_if = "is_zero")]
    pub channels: usize,
    /// How images are resized to `image_size`.
    #[serde(skip_serializing_if = "is_bilinear")]
    pub resize: Resize,
}

// Left out of a written config at their defaults, so that configs (and the fingerprints of
// runs) from before these keys read the same.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_bilinear(r: &Resize) -> bool {
    *r == Resize::Bilinear
}

/// How a bridge resizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Bilinear, corners not aligned (torchvision's `Resize` on tensors, without
    /// antialiasing).
    #[default]
    Bilinear,
    /// Nearest neighbour.
    Nearest,
}

impl TeacherInput {
    /// The channels the teacher takes, for images of `image_channels`.
    pub fn teacher_channels(&self, image_channels: usize) -> usize {
        if self.channels == 0 {
            image_channels
        } else {
            self.channels
        }
    }

    /// Checks the values for `image_channels`-channel images; `key` prefixes error messages.
    pub fn validate(&self, key: &str, image_channels: usize) -> Result<()> {
        let channels = self.teacher_channels(image_channels);
        if channels != image_channels && !matches!((image_channels, channels), (1, 3) | (3, 1)) {
            return Err(invalid(
                &format!("{key}.channels"),
                &format!("0, {image_channels}, or a grey/colour bridge (1 <-> 3)"),
                channels,
            ));
        }
        if self.mean.len() != self.std.len()
            || !(self.mean.is_empty() || self.mean.len() == channels)
        {
            return Err(invalid(
                &format!("{key}.mean"),
                &format!("mean and std of {channels} channels each (or both empty)"),
                format!("{} means and {} stds", self.mean.len(), self.std.len()),
            ));
        }
        if self.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return Err(invalid(
                &format!("{key}.std"),
                "finite values > 0",
                format!("{:?}", self.std),
            ));
        }
        Ok(())
    }
}

/// A checked [`TeacherInput`] for images of a known channel count, ready to apply.
#[derive(Debug)]
pub struct InputBridge {
    input: TeacherInput,
    image_channels: usize,
    mean: Option<(Tensor, Tensor)>,
}

impl InputBridge {
    /// The bridge from `image_channels`-channel images to what `input` states, its
    /// constants on `device`; an error names the key that cannot be met.
    pub fn new(input: &TeacherInput, image_channels: usize, device: Device) -> Result<Self> {
        input.validate("teacher.input", image_channels)?;
        let mean = (!input.mean.is_empty()).then(|| {
            let shape = [1, input.mean.len() as i64, 1, 1];
            let t = |v: &[f64]| {
                Tensor::from_slice(v)
                    .to_kind(Kind::Float)
                    .reshape(shape)
                    .to_device(device)
            };
            (t(&input.mean), t(&input.std))
        });
        Ok(Self {
            input: input.clone(),
            image_channels,
            mean,
        })
    }

    /// The contract it meets.
    pub fn input(&self) -> &TeacherInput {
        &self.input
    }

    /// The teacher's view of `images` (`[b, c, h, w]` in [0, 1]).
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let mut x = match (self.image_channels, self.channels()) {
            (1, 3) => images.expand([-1, 3, -1, -1], false),
            (3, 1) => {
                let luma = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
                    .to_device(images.device())
                    .to_kind(images.kind())
                    .view([1, 3, 1, 1]);
                (images * luma).sum_dim_intlist(1, true, images.kind())
            }
            _ => images.shallow_clone(),
        };
        let s = self.input.image_size as i64;
        let size = x.size();
        if s > 0 && (size[2] != s || size[3] != s) {
            x = match self.input.resize {
                Resize::Bilinear => x.upsample_bilinear2d([s, s], false, None, None),
                Resize::Nearest => x.upsample_nearest2d([s, s], None, None),
            };
        }
        if let Some((mean, std)) = &self.mean {
            x = (x - mean) / std;
        }
        x
    }

    /// The teacher's channels.
    pub fn channels(&self) -> usize {
        self.input.teacher_channels(self.image_channels)
    }

    /// What it does, for logs and reports (`None`: nothing, the teacher takes kd's images
    /// as they are), e.g. "grey repeated to 3 channels, 28 -> 32 bilinear, normalized".
    pub fn describe(&self, image_size: usize) -> Option<String> {
        let mut steps = Vec::new();
        match (self.image_channels, self.channels()) {
            (1, 3) => steps.push("grey repeated to 3 channels".to_string()),
            (3, 1) => steps.push("colour to grey (BT.601 luma)".to_string()),
            _ => {}
        }
        let s = self.input.image_size;
        if s > 0 && s != image_size {
            let how = match self.input.resize {
                Resize::Bilinear => "bilinear",
                Resize::Nearest => "nearest",
            };
            steps.push(format!("{image_size}x{image_size} -> {s}x{s} {how}"));
        }
        if !self.input.mean.is_empty() {
            steps.push(format!(
                "normalized (mean {:?}, std {:?})",
                self.input.mean, self.input.std
            ));
        }
        (!steps.is_empty()).then(|| steps.join(", "))
    }
}

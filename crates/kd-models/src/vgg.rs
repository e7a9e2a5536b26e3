//! VGG (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition", configurations A, B, D and E = VGG11, 13, 16, 19) as the seed notebook's
//! teacher uses it: Keras' `VGG19(include_top=False)` convolutional base — every 3x3 conv
//! with ReLU and every 2x2 max-pool, the last one included — then global average pooling
//! and one dense layer.
//!
//! Layer numbering and parameter names follow torchvision's `vgg19().features` exactly
//! (`features.0.weight` … `features.34.bias`), so ImageNet weights published for torchvision
//! load by name ([`crate::pretrained`]); the dense layer is `classifier`, which does not
//! collide with torchvision's `classifier.0/3/6`. For 32x32x3 inputs and 10 classes VGG19
//! has 20,024,384 + 5,130 = 20,029,514 parameters, the total Keras printed for the seed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::conv_stack::{conv_stack, Stage};
use crate::error::{invalid, Result};
use crate::layers::Sequential;

/// A VGG convolutional base with a global-average-pooling dense head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggConfig {
    /// 11, 13, 16 or 19 weight layers in the original (here: 8, 10, 13 or 16 convolutions).
    pub depth: usize,
    /// ImageNet weights for the convolutional base (a `.safetensors` file with torchvision's
    /// `features.N.*` names, made by `cargo xtask fetch-weights vgg19`); `None` starts from
    /// random initialization.
    pub pretrained: Option<PathBuf>,
}

impl Default for VggConfig {
    /// The seed's teacher: VGG19 (ImageNet weights are set in the run config).
    fn default() -> Self {
        Self {
            depth: 19,
            pretrained: None,
        }
    }
}

/// The stages of VGG-`depth` (torchvision's configurations A, B, D, E).
fn layout(depth: usize) -> Option<Vec<Stage>> {
    let convs_per_stage: [usize; 5] = match depth {
        11 => [1, 1, 2, 2, 2],
        13 => [2, 2, 2, 2, 2],
        16 => [2, 2, 3, 3, 3],
        19 => [2, 2, 4, 4, 4],
        _ => return None,
    };
    let widths = [64, 128, 256, 512, 512];
    let mut out = Vec::new();
    for (n, w) in convs_per_stage.into_iter().zip(widths) {
        out.extend(std::iter::repeat_n(Stage::Conv(w), n));
        out.push(Stage::Pool);
    }
    Some(out)
}

impl VggConfig {
    /// Checks the config for `input_hw x input_hw` inputs; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        if layout(self.depth).is_none() {
            return Err(invalid(
                &format!("{key}.depth"),
                "11, 13, 16 or 19",
                self.depth,
            ));
        }
        if input_hw < 32 {
            return Err(invalid(
                &format!("{key}.kind"),
                "inputs of at least 32x32 for VGG's five max-pools (pad smaller images with `data.transform.pad_to = 32`)",
                format!("vgg on {input_hw}x{input_hw} inputs"),
            ));
        }
        Ok(())
    }

    /// The convolutions and pools in order (empty for an unknown depth).
    pub fn stages(&self) -> Vec<Stage> {
        layout(self.depth).unwrap_or_default()
    }

    /// Number of 3x3 convolutions.
    pub fn convs(&self) -> usize {
        layout(self.depth).map_or(0, |l| l.iter().filter(|s| **s != Stage::Pool).count())
    }
}

/// Builds the VGG under `p` for `in_channels`-channel inputs and `classes` outputs; the
/// config must have been validated.
pub fn vgg(p: &nn::Path, cfg: &VggConfig, in_channels: usize, classes: usize) -> Sequential {
    conv_stack(p, &cfg.stages(), in_channels, classes)
}

//! The seed notebook's student family: `blocks` blocks of `convs_per_block` 3x3 same-padded
//! convolutions with ReLU, each block followed by a 2x2 max-pool, then global average pooling
//! and one dense layer. The seed's own student is `blocks = 5, convs_per_block = 3,
//! width = 64` on 32x32x3 inputs (519,434 parameters in Keras' summary).
//!
//! Parameter names follow a PyTorch `nn.Sequential` of the same layers: `features.{i}` where
//! `i` counts every layer (conv, ReLU, pool) as PyTorch would, and `classifier` for the dense.

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::conv_stack::{conv_stack, Stage};
use crate::error::{invalid, Result};
use crate::layers::Sequential;

/// Shape of a student of the seed's family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Number of conv blocks, each ending in a 2x2 max-pool.
    pub blocks: usize,
    /// 3x3 convolutions per block.
    pub convs_per_block: usize,
    /// Output channels of every convolution.
    pub width: usize,
}

impl Default for StudentConfig {
    /// The seed's student.
    fn default() -> Self {
        Self {
            blocks: 5,
            convs_per_block: 3,
            width: 64,
        }
    }
}

impl StudentConfig {
    /// Checks the shape against the input size it will see; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        if self.blocks == 0 {
            return Err(invalid(&format!("{key}.blocks"), "at least 1", self.blocks));
        }
        if self.convs_per_block == 0 {
            return Err(invalid(
                &format!("{key}.convs_per_block"),
                "at least 1",
                self.convs_per_block,
            ));
        }
        if self.width == 0 {
            return Err(invalid(&format!("{key}.width"), "at least 1", self.width));
        }
        if input_hw >> self.blocks == 0 {
            return Err(invalid(
                &format!("{key}.blocks"),
                &format!(
                    "at most {} blocks for {input_hw}x{input_hw} inputs (each halves the size; data.transform.pad_to pads images larger)",
                    input_hw.ilog2()
                ),
                self.blocks,
            ));
        }
        Ok(())
    }

    /// The convolutions and pools in order.
    pub fn stages(&self) -> Vec<Stage> {
        let block = std::iter::repeat_n(Stage::Conv(self.width as i64), self.convs_per_block)
            .chain([Stage::Pool]);
        std::iter::repeat_n(block, self.blocks).flatten().collect()
    }
}

/// Builds the student under `p` for `in_channels`-channel inputs and `classes` outputs.
pub fn student(
    p: &nn::Path,
    cfg: &StudentConfig,
    in_channels: usize,
    classes: usize,
) -> Sequential {
    conv_stack(p, &cfg.stages(), in_channels, classes)
}

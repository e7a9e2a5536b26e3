//! The seed notebook's student family: `blocks` blocks of `convs_per_block` 3x3 same-padded
//! convolutions with ReLU, each block followed by a 2x2 max-pool, then global average pooling
//! and one dense layer. The seed's own student is `blocks = 5, convs_per_block = 3,
//! width = 64` on 32x32x3 inputs (519,434 parameters in Keras' summary).
//!
//! Parameter names follow a PyTorch `nn.Sequential` of the same layers: `features.{i}` where
//! `i` counts every layer (conv, ReLU, pool) as PyTorch would, and `classifier` for the dense.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

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
                    "at most {} blocks for {input_hw}x{input_hw} inputs (each halves the size)",
                    input_hw.ilog2()
                ),
                self.blocks,
            ));
        }
        Ok(())
    }
}

/// Builds the student under `p` for `in_channels`-channel inputs and `classes` outputs.
pub fn student(
    p: &nn::Path,
    cfg: &StudentConfig,
    in_channels: usize,
    classes: usize,
) -> Sequential {
    let conv = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let mut net = Sequential::new();
    let (mut layer, mut c_in) = (0usize, in_channels as i64);
    let width = cfg.width as i64;
    for _ in 0..cfg.blocks {
        for _ in 0..cfg.convs_per_block {
            // [b, c_in, h, w] -> [b, width, h, w]
            let name = format!("features.{layer}");
            net.push(
                &name,
                "Conv2d",
                nn::conv2d(p / "features" / layer, c_in, width, 3, conv),
            );
            net.push_fn(format!("features.{}", layer + 1), "ReLU", |x| x.relu());
            layer += 2;
            c_in = width;
        }
        // [b, width, h, w] -> [b, width, h/2, w/2]
        net.push_fn(format!("features.{layer}"), "MaxPool2d", |x| {
            x.max_pool2d_default(2)
        });
        layer += 1;
    }
    // [b, width, h', w'] -> [b, width] -> [b, classes]
    net.push_fn("avgpool", "GlobalAvgPool2d", global_avg_pool);
    net.push(
        "classifier",
        "Linear",
        nn::linear(p / "classifier", width, classes as i64, Default::default()),
    );
    net
}

/// `[b, c, h, w] -> [b, c]`, the mean over each feature map (Keras' `GlobalAvgPool2D`).
pub(crate) fn global_avg_pool(x: &Tensor) -> Tensor {
    x.mean_dim([-2i64, -1].as_slice(), false, x.kind())
}

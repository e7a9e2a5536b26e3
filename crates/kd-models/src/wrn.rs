//! Wide residual networks (Zagoruyko & Komodakis 2016, "Wide Residual Networks") as the
//! distillation benchmarks define them (RepDistiller's `models/wrn.py`): a 3x3 convolution to
//! 16 channels, three groups of `n = (depth - 4) / 6` pre-activation blocks with
//! `16k`, `32k`, `64k` channels (`k` the widening factor; the second and third groups halve
//! the resolution), then BN → ReLU → global average pooling → dense. A block is BN → ReLU →
//! 3x3 conv → BN → ReLU → (dropout) → 3x3 conv, added to its input; where the shape changes
//! the shortcut is a 1x1 convolution of the block's pre-activated input.
//!
//! The benchmark names: `wrn_16_1`, `wrn_16_2`, `wrn_40_1`, `wrn_40_2` (depth, factor).
//! Parameter names follow the PyTorch module (`conv1`, `block1.layer.0.bn1`,
//! `block2.layer.0.convShortcut`, `bn1`, `fc`).

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::error::{invalid, Result};
use crate::layers::Sequential;
use crate::resnet::{conv1x1, conv3x3, pooled_head};

/// Shape of a wide ResNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WrnConfig {
    /// Total layers, `6n + 4` (16, 22, 28, 40, ...).
    pub depth: usize,
    /// Widening factor `k`.
    pub widen_factor: usize,
    /// Dropout between a block's convolutions (training only).
    pub dropout: f64,
}

impl Default for WrnConfig {
    /// `wrn_40_2`, the benchmarks' most common teacher of this family.
    fn default() -> Self {
        Self {
            depth: 40,
            widen_factor: 2,
            dropout: 0.0,
        }
    }
}

impl WrnConfig {
    /// Checks the shape against the input size it will see; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        if self.depth < 10 || !(self.depth - 4).is_multiple_of(6) {
            return Err(invalid(
                &format!("{key}.depth"),
                "6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...)",
                self.depth,
            ));
        }
        if self.widen_factor == 0 {
            return Err(invalid(
                &format!("{key}.widen_factor"),
                "at least 1",
                self.widen_factor,
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid(
                &format!("{key}.dropout"),
                "in [0, 1)",
                self.dropout,
            ));
        }
        if input_hw < 4 {
            return Err(invalid(
                &format!("{key}.depth"),
                "inputs of at least 4x4 (two groups halve the resolution)",
                format!("{input_hw}x{input_hw} inputs"),
            ));
        }
        Ok(())
    }

    /// The benchmark name, e.g. `wrn_40_2`.
    pub fn describe(&self) -> String {
        format!("wrn_{}_{}", self.depth, self.widen_factor)
    }
}

/// A pre-activation block.
#[derive(Debug)]
struct WideBlock {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    /// The 1x1 projection where the shape changes (then the shortcut is taken after the
    /// first BN and ReLU, as in the reference).
    shortcut: Option<nn::Conv2D>,
    dropout: f64,
}

impl WideBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, dropout: f64) -> Self {
        Self {
            bn1: nn::batch_norm2d(p / "bn1", c_in, Default::default()),
            conv1: conv3x3(p / "conv1", c_in, c_out, stride),
            bn2: nn::batch_norm2d(p / "bn2", c_out, Default::default()),
            conv2: conv3x3(p / "conv2", c_out, c_out, 1),
            shortcut: (c_in != c_out).then(|| conv1x1(p / "convShortcut", c_in, c_out, stride)),
            dropout,
        }
    }
}

impl ModuleT for WideBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pre = self.bn1.forward_t(x, train).relu();
        let out = self.bn2.forward_t(&pre.apply(&self.conv1), train).relu();
        let out = out.dropout(self.dropout, train).apply(&self.conv2);
        let shortcut = match &self.shortcut {
            Some(conv) => pre.apply(conv),
            None => x.shallow_clone(),
        };
        shortcut + out
    }
}

/// Builds the wide ResNet under `p` for `[b, in_channels, h, w]` inputs.
pub fn wrn(p: &nn::Path, cfg: &WrnConfig, in_channels: usize, classes: usize) -> Sequential {
    let k = cfg.widen_factor as i64;
    let blocks = (cfg.depth - 4) / 6;
    let mut net = Sequential::new();
    // [b, c, h, w] -> [b, 16, h, w]
    net.push(
        "conv1",
        "Conv2d",
        conv3x3(p / "conv1", in_channels as i64, 16, 1),
    );
    let mut c_in = 16;
    for (group, (c_out, stride)) in [(16 * k, 1), (32 * k, 2), (64 * k, 2)]
        .into_iter()
        .enumerate()
    {
        let layer = p / format!("block{}", group + 1) / "layer";
        for i in 0..blocks {
            let stride = if i == 0 { stride } else { 1 };
            let name = format!("block{}.layer.{i}", group + 1);
            let block = WideBlock::new(&(&layer / i), c_in, c_out, stride, cfg.dropout);
            net.push(name, "WideBlock", block);
            c_in = c_out;
        }
    }
    net.push(
        "bn1",
        "BatchNorm2d",
        nn::batch_norm2d(p / "bn1", c_in, Default::default()),
    );
    net.push_fn("relu", "ReLU", |x| x.relu());
    // [b, 64k, h/4, w/4] -> [b, 64k] -> [b, classes]
    pooled_head(&mut net, p, c_in, classes);
    net
}

//! CIFAR-style ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition",
//! section 4.2) as the distillation benchmarks define them (CRD, Tian et al. 2020, and the
//! RepDistiller code it published, `models/resnet.py`): a 3x3 convolution to `filters[0]`
//! channels with batch norm and ReLU, three stages of `n = (depth - 2) / 6` basic blocks
//! with `filters[1..4]` channels (the second and third stages halve the resolution), global
//! average pooling and a dense layer. A basic block is 3x3 conv → BN → ReLU → 3x3 conv → BN,
//! plus the input (through a 1x1 conv and BN where the shape changes), then ReLU.
//!
//! The benchmark names: `resnet8` … `resnet110` are `filters = [16, 16, 32, 64]` with depth
//! 8, 14, 20, 32, 44, 56 or 110; `resnet8x4` and `resnet32x4` are `filters = [32, 64, 128,
//! 256]` with depth 8 and 32.
//!
//! Parameter names follow the PyTorch module (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, `fc`). The pooling is global, so any input size works (on 32x32
//! inputs it is the reference's `AvgPool2d(8)`).

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::error::{invalid, Result};
use crate::layers::Sequential;

/// Shape of a CIFAR-style ResNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// Total layers, `6n + 2` (8, 14, 20, 32, 44, 56, 110, ...).
    pub depth: usize,
    /// Channels of the stem and of the three stages.
    pub filters: [usize; 4],
}

impl Default for ResNetConfig {
    /// `resnet8x4`, the benchmarks' most common student.
    fn default() -> Self {
        Self {
            depth: 8,
            filters: [32, 64, 128, 256],
        }
    }
}

impl ResNetConfig {
    /// Checks the shape against the input size it will see; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(invalid(
                &format!("{key}.depth"),
                "6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)",
                self.depth,
            ));
        }
        if self.filters.contains(&0) {
            return Err(invalid(
                &format!("{key}.filters"),
                "four channel counts >= 1",
                format!("{:?}", self.filters),
            ));
        }
        if input_hw < 4 {
            return Err(invalid(
                &format!("{key}.depth"),
                "inputs of at least 4x4 (two stages halve the resolution)",
                format!("{input_hw}x{input_hw} inputs"),
            ));
        }
        Ok(())
    }

    /// The benchmark name (`resnet32`, `resnet8x4`) or `resnet<depth> <filters>`.
    pub fn describe(&self) -> String {
        match self.filters {
            [16, 16, 32, 64] => format!("resnet{}", self.depth),
            [32, 64, 128, 256] => format!("resnet{}x4", self.depth),
            f => format!("resnet{} {f:?}", self.depth),
        }
    }
}

/// A 3x3 convolution without bias, same padding.
pub(crate) fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, 3, config)
}

/// A 1x1 convolution without bias (a shortcut's projection).
pub(crate) fn conv1x1(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, 1, config)
}

/// A post-activation basic block.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// 1x1 conv and BN where the block changes the shape.
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let bn = |name: &str| nn::batch_norm2d(p / name, c_out, Default::default());
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            (
                conv1x1(&d / 0, c_in, c_out, stride),
                nn::batch_norm2d(&d / 1, c_out, Default::default()),
            )
        });
        Self {
            conv1: conv3x3(p / "conv1", c_in, c_out, stride),
            bn1: bn("bn1"),
            conv2: conv3x3(p / "conv2", c_out, c_out, 1),
            bn2: bn("bn2"),
            downsample,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&x.apply(&self.conv1), train).relu();
        let out = self.bn2.forward_t(&out.apply(&self.conv2), train);
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&x.apply(conv), train),
            None => x.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

/// Builds the ResNet under `p` for `[b, in_channels, h, w]` inputs.
pub fn resnet(p: &nn::Path, cfg: &ResNetConfig, in_channels: usize, classes: usize) -> Sequential {
    let [stem, f1, f2, f3] = cfg.filters.map(|f| f as i64);
    let blocks = (cfg.depth - 2) / 6;
    let mut net = Sequential::new();
    // [b, c, h, w] -> [b, stem, h, w]
    net.push(
        "conv1",
        "Conv2d",
        conv3x3(p / "conv1", in_channels as i64, stem, 1),
    );
    net.push(
        "bn1",
        "BatchNorm2d",
        nn::batch_norm2d(p / "bn1", stem, Default::default()),
    );
    net.push_fn("relu", "ReLU", |x| x.relu());
    let mut c_in = stem;
    for (stage, (c_out, stride)) in [(f1, 1), (f2, 2), (f3, 2)].into_iter().enumerate() {
        let layer = p / format!("layer{}", stage + 1);
        for i in 0..blocks {
            let stride = if i == 0 { stride } else { 1 };
            let name = format!("layer{}.{i}", stage + 1);
            net.push(
                name,
                "BasicBlock",
                BasicBlock::new(&(&layer / i), c_in, c_out, stride),
            );
            c_in = c_out;
        }
    }
    // [b, f3, h/4, w/4] -> [b, f3] -> [b, classes]
    pooled_head(&mut net, p, c_in, classes);
    net
}

/// Global average pooling and the dense `fc` layer, from `channels` to `classes`.
pub(crate) fn pooled_head(net: &mut Sequential, p: &nn::Path, channels: i64, classes: usize) {
    net.push_fn("avgpool", "AdaptiveAvgPool2d", |x| {
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    });
    let fc = nn::linear(p / "fc", channels, classes as i64, Default::default());
    net.push("fc", "Linear", fc);
}

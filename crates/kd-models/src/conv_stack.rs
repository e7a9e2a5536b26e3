//! The plain ConvNet shape that VGG (Simonyan & Zisserman 2015) and the seed notebook's
//! student share: 3x3 same-padded convolutions with ReLU and 2x2 max-pools in a given order,
//! then global average pooling (Keras' `GlobalAvgPool2D`) and one dense layer.
//!
//! Layers are numbered as in a PyTorch `nn.Sequential` named `features` (conv `i`, its ReLU
//! `i + 1`, a pool one index), the dense layer is `classifier`.

use tch::{nn, Tensor};

use crate::layers::Sequential;

/// One entry of a stack: a conv with that many output channels, or a max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// 3x3 conv (stride 1, padding 1, with bias) then ReLU.
    Conv(i64),
    /// 2x2 max-pool, stride 2.
    Pool,
}

/// Builds `stages` under `p / "features"`, then GAP and `classifier`.
pub fn conv_stack(
    p: &nn::Path,
    stages: &[Stage],
    in_channels: usize,
    classes: usize,
) -> Sequential {
    let conv = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let features = p / "features";
    let mut net = Sequential::new();
    let (mut index, mut c_in) = (0usize, in_channels as i64);
    for &stage in stages {
        match stage {
            Stage::Conv(c_out) => {
                // [b, c_in, h, w] -> [b, c_out, h, w]
                net.push(
                    format!("features.{index}"),
                    "Conv2d",
                    nn::conv2d(&features / index, c_in, c_out, 3, conv),
                );
                net.push_fn(format!("features.{}", index + 1), "ReLU", |x| x.relu());
                index += 2;
                c_in = c_out;
            }
            Stage::Pool => {
                // [b, c, h, w] -> [b, c, h/2, w/2]
                net.push_fn(format!("features.{index}"), "MaxPool2d", |x| {
                    x.max_pool2d_default(2)
                });
                index += 1;
            }
        }
    }
    // [b, c, h', w'] -> [b, c] -> [b, classes]
    net.push_fn("avgpool", "GlobalAvgPool2d", global_avg_pool);
    net.push(
        "classifier",
        "Linear",
        nn::linear(p / "classifier", c_in, classes as i64, Default::default()),
    );
    net
}

/// `[b, c, h, w] -> [b, c]`, the mean over each feature map.
fn global_avg_pool(x: &Tensor) -> Tensor {
    x.mean_dim([-2i64, -1].as_slice(), false, x.kind())
}

//! A compact VGG-style teacher with batch normalization (Ioffe & Szegedy 2015) for small
//! grayscale or colour images: stages of 3x3 conv → BatchNorm → ReLU, a 2x2 max-pool after
//! each stage, then flatten → dense(hidden) → ReLU → dropout → dense(classes).
//!
//! Parameter names follow PyTorch's `nn.Sequential` numbering (`features.{i}`,
//! `classifier.{i}`), as torchvision's VGG does.

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::error::{invalid, Result};
use crate::layers::Sequential;

/// Shape of a compact CNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of each stage; each stage ends in a 2x2 max-pool.
    pub channels: Vec<usize>,
    /// 3x3 convolutions per stage.
    pub convs_per_stage: usize,
    /// Units of the hidden dense layer.
    pub hidden: usize,
    /// Dropout probability before the last dense layer (training only).
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128],
            convs_per_stage: 2,
            hidden: 256,
            dropout: 0.3,
        }
    }
}

impl CnnConfig {
    /// Checks the shape against the input size it will see; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(invalid(
                &format!("{key}.channels"),
                "a non-empty list of positive channel counts",
                format!("{:?}", self.channels),
            ));
        }
        if self.convs_per_stage == 0 || self.hidden == 0 {
            return Err(invalid(
                &format!("{key}.convs_per_stage/hidden"),
                "at least 1",
                format!("{} / {}", self.convs_per_stage, self.hidden),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid(
                &format!("{key}.dropout"),
                "in [0, 1)",
                self.dropout,
            ));
        }
        if input_hw >> self.channels.len() == 0 {
            return Err(invalid(
                &format!("{key}.channels"),
                &format!(
                    "at most {} stages for {input_hw}x{input_hw} inputs",
                    input_hw.ilog2()
                ),
                self.channels.len(),
            ));
        }
        Ok(())
    }
}

/// Builds the CNN under `p` for `[b, in_channels, input_hw, input_hw]` inputs.
pub fn cnn(
    p: &nn::Path,
    cfg: &CnnConfig,
    in_channels: usize,
    input_hw: usize,
    classes: usize,
) -> Sequential {
    let conv = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    let features = p / "features";
    let mut net = Sequential::new();
    let (mut layer, mut c_in, mut hw) = (0usize, in_channels as i64, input_hw as i64);
    for &c_out in &cfg.channels {
        let c_out = c_out as i64;
        for _ in 0..cfg.convs_per_stage {
            // [b, c_in, hw, hw] -> [b, c_out, hw, hw]
            net.push(
                format!("features.{layer}"),
                "Conv2d",
                nn::conv2d(&features / layer, c_in, c_out, 3, conv),
            );
            net.push(
                format!("features.{}", layer + 1),
                "BatchNorm2d",
                nn::batch_norm2d(&features / (layer + 1), c_out, Default::default()),
            );
            net.push_fn(format!("features.{}", layer + 2), "ReLU", |x| x.relu());
            layer += 3;
            c_in = c_out;
        }
        // [b, c_out, hw, hw] -> [b, c_out, hw/2, hw/2]
        net.push_fn(format!("features.{layer}"), "MaxPool2d", |x| {
            x.max_pool2d_default(2)
        });
        layer += 1;
        hw /= 2;
    }
    let classifier = p / "classifier";
    let dropout = cfg.dropout;
    // [b, c, hw, hw] -> [b, c*hw*hw] -> [b, hidden] -> [b, classes]
    net.push_fn("flatten", "Flatten", |x| x.flatten(1, -1));
    net.push(
        "classifier.0",
        "Linear",
        nn::linear(
            &classifier / 0,
            c_in * hw * hw,
            cfg.hidden as i64,
            Default::default(),
        ),
    );
    net.push_fn("classifier.1", "ReLU", |x| x.relu());
    net.push_fn_t("classifier.2", "Dropout", move |x, train| {
        x.dropout(dropout, train)
    });
    net.push(
        "classifier.3",
        "Linear",
        nn::linear(
            &classifier / 3,
            cfg.hidden as i64,
            classes as i64,
            Default::default(),
        ),
    );
    net
}

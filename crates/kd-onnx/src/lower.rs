//! kd's architectures as inference [`Graph`]s, read from a model's named weights: the
//! preprocessing first (zero padding, per-channel normalization), then the layers of
//! [`kd_models`] in the same order and with the same strides, batch normalization folded into
//! the convolution before it (Jacob et al. 2018, "Quantization and Training of Neural
//! Networks for Efficient Integer-Arithmetic-Only Inference", section 3.2:
//! `w' = w·γ/σ`, `b' = (b − μ)·γ/σ + β`, `σ = sqrt(var + eps)`), dropout left out.

use std::collections::HashMap;

use kd_models::conv_stack::Stage;
use kd_models::{CnnConfig, ModelConfig, ResNetConfig, WrnConfig};
use tch::{Kind, Tensor};

use crate::error::{OnnxError, Result};
use crate::graph::{Graph, Op};

/// libtorch's batch-norm epsilon (tch's `BatchNormConfig` default), which kd's models use.
const BN_EPS: f64 = 1e-5;

/// The input transform an exported model has built in, as `kd-cli run` applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// `[c, h, w]` of the images the exported model takes (the dataset's own size).
    pub image_shape: [usize; 3],
    /// Zero-pad to `pad_to x pad_to`, centred.
    pub pad_to: Option<usize>,
    /// Per-channel mean and standard deviation (both empty: none).
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The weights of a model by state-dict name, as `VarStore::variables` gives them.
struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    architecture: String,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<Tensor> {
        self.tensors
            .get(name)
            .map(|t| t.detach().to_kind(Kind::Float).to_device(tch::Device::Cpu))
            .ok_or_else(|| OnnxError::MissingTensor {
                architecture: self.architecture.clone(),
                name: name.into(),
            })
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The batch norm at `prefix` as `(γ/σ, β − μ·γ/σ)`.
    fn bn_affine(&self, prefix: &str) -> Result<(Tensor, Tensor)> {
        let gamma = self.get(&format!("{prefix}.weight"))?;
        let beta = self.get(&format!("{prefix}.bias"))?;
        let mean = self.get(&format!("{prefix}.running_mean"))?;
        let var = self.get(&format!("{prefix}.running_var"))?;
        let scale = gamma / (var + BN_EPS).sqrt();
        let shift = beta - &mean * &scale;
        Ok((scale, shift))
    }

    /// The convolution at `conv` (bias if it has one) with the batch norm at `bn` folded in.
    fn conv(&self, conv: &str, bn: Option<&str>, stride: i64) -> Result<Op> {
        let weight = self.get(&format!("{conv}.weight"))?;
        let c_out = weight.size()[0];
        let bias_name = format!("{conv}.bias");
        let bias = if self.has(&bias_name) {
            self.get(&bias_name)?
        } else {
            Tensor::zeros([c_out], (Kind::Float, tch::Device::Cpu))
        };
        let (weight, bias) = match bn {
            Some(bn) => {
                let (scale, shift) = self.bn_affine(bn)?;
                (weight * scale.view([c_out, 1, 1, 1]), bias * &scale + shift)
            }
            None => (weight, bias),
        };
        Ok(Op::Conv {
            weight,
            bias,
            stride,
        })
    }

    fn batch_norm(&self, prefix: &str) -> Result<Op> {
        Ok(Op::BatchNorm {
            gamma: self.get(&format!("{prefix}.weight"))?,
            beta: self.get(&format!("{prefix}.bias"))?,
            mean: self.get(&format!("{prefix}.running_mean"))?,
            var: self.get(&format!("{prefix}.running_var"))?,
            eps: BN_EPS,
        })
    }

    fn dense(&self, prefix: &str) -> Result<Op> {
        Ok(Op::Dense {
            weight: self.get(&format!("{prefix}.weight"))?,
            bias: self.get(&format!("{prefix}.bias"))?,
        })
    }
}

/// The graph of `config` with `weights`, taking images of `preprocess.image_shape` and
/// returning `classes` logits.
pub fn lower(
    config: &ModelConfig,
    weights: &HashMap<String, Tensor>,
    preprocess: &Preprocess,
    classes: usize,
) -> Result<Graph> {
    let w = Weights {
        tensors: weights,
        architecture: config.describe(),
    };
    let [c, h, wd] = preprocess.image_shape.map(|d| d as i64);
    let mut g = Graph::new([c, h, wd], classes as i64);
    preprocessing(&mut g, preprocess);
    match config {
        ModelConfig::Student(s) => conv_stack(&mut g, &w, &s.stages())?,
        ModelConfig::Vgg(v) => conv_stack(&mut g, &w, &v.stages())?,
        ModelConfig::Cnn(cnn) => cnn_graph(&mut g, &w, cnn)?,
        ModelConfig::ResNet(r) => resnet(&mut g, &w, r)?,
        ModelConfig::Wrn(r) => wrn(&mut g, &w, r)?,
        ModelConfig::SimKd(_) => {
            return Err(OnnxError::Unsupported(format!(
                "ONNX export does not lower SimKD students (a {}) yet: use the safetensors model file with kd-cli eval and predict",
                config.describe()
            )))
        }
    }
    Ok(g)
}

fn preprocessing(g: &mut Graph, p: &Preprocess) {
    let [_, h, w] = p.image_shape.map(|d| d as i64);
    if let Some(side) = p.pad_to.map(|s| s as i64).filter(|&s| s != h || s != w) {
        let (top, left) = ((side - h) / 2, (side - w) / 2);
        g.then(Op::Pad {
            top,
            left,
            bottom: side - h - top,
            right: side - w - left,
        });
    }
    if !p.mean.is_empty() {
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        g.then(Op::Normalize {
            mean: f32s(&p.mean),
            std: f32s(&p.std),
        });
    }
}

/// [`kd_models::conv_stack`]: 3x3 convs with ReLU and 2x2 pools, GAP, `classifier`.
fn conv_stack(g: &mut Graph, w: &Weights, stages: &[Stage]) -> Result<()> {
    let mut index = 0;
    for stage in stages {
        match stage {
            Stage::Conv(_) => {
                g.then(w.conv(&format!("features.{index}"), None, 1)?);
                g.then(Op::Relu);
                index += 2;
            }
            Stage::Pool => {
                g.then(Op::MaxPool { kernel: 2 });
                index += 1;
            }
        }
    }
    g.then(Op::GlobalAvgPool);
    g.then(Op::Flatten);
    g.then(w.dense("classifier")?);
    Ok(())
}

/// [`kd_models::cnn`]: conv → BN → ReLU stages with pools, flatten, dense → ReLU → dense.
fn cnn_graph(g: &mut Graph, w: &Weights, cfg: &CnnConfig) -> Result<()> {
    let mut layer = 0;
    for _ in &cfg.channels {
        for _ in 0..cfg.convs_per_stage {
            let bn = format!("features.{}", layer + 1);
            g.then(w.conv(&format!("features.{layer}"), Some(&bn), 1)?);
            g.then(Op::Relu);
            layer += 3;
        }
        g.then(Op::MaxPool { kernel: 2 });
        layer += 1;
    }
    g.then(Op::Flatten);
    g.then(w.dense("classifier.0")?);
    g.then(Op::Relu);
    g.then(w.dense("classifier.3")?);
    Ok(())
}

/// GAP, flatten and the dense `fc` of the ResNets.
fn pooled_head(g: &mut Graph, w: &Weights) -> Result<()> {
    g.then(Op::GlobalAvgPool);
    g.then(Op::Flatten);
    g.then(w.dense("fc")?);
    Ok(())
}

/// The stride of block `i` of a stage or group whose first block has `first`.
fn block_stride(i: usize, first: i64) -> i64 {
    if i == 0 {
        first
    } else {
        1
    }
}

/// [`kd_models::resnet`]: stem, three stages of post-activation basic blocks, head.
fn resnet(g: &mut Graph, w: &Weights, cfg: &ResNetConfig) -> Result<()> {
    g.then(w.conv("conv1", Some("bn1"), 1)?);
    let mut x = g.then(Op::Relu);
    let blocks = (cfg.depth - 2) / 6;
    for (stage, first) in [1, 2, 2].into_iter().enumerate() {
        for i in 0..blocks {
            let p = format!("layer{}.{i}", stage + 1);
            let stride = block_stride(i, first);
            let conv1 = w.conv(&format!("{p}.conv1"), Some(&format!("{p}.bn1")), stride)?;
            let out = g.push(conv1, &[x]);
            let out = g.push(Op::Relu, &[out]);
            let conv2 = w.conv(&format!("{p}.conv2"), Some(&format!("{p}.bn2")), 1)?;
            let out = g.push(conv2, &[out]);
            let shortcut = if w.has(&format!("{p}.downsample.0.weight")) {
                let d = format!("{p}.downsample");
                let conv = w.conv(&format!("{d}.0"), Some(&format!("{d}.1")), stride)?;
                g.push(conv, &[x])
            } else {
                x
            };
            let sum = g.push(Op::Add, &[out, shortcut]);
            x = g.push(Op::Relu, &[sum]);
        }
    }
    pooled_head(g, w)
}

/// [`kd_models::wrn`]: stem, three groups of pre-activation blocks, BN → ReLU, head.
fn wrn(g: &mut Graph, w: &Weights, cfg: &WrnConfig) -> Result<()> {
    let mut x = g.then(w.conv("conv1", None, 1)?);
    let blocks = (cfg.depth - 4) / 6;
    for (group, first) in [1, 2, 2].into_iter().enumerate() {
        for i in 0..blocks {
            let p = format!("block{}.layer.{i}", group + 1);
            let stride = block_stride(i, first);
            let pre = g.push(w.batch_norm(&format!("{p}.bn1"))?, &[x]);
            let pre = g.push(Op::Relu, &[pre]);
            let conv1 = w.conv(&format!("{p}.conv1"), Some(&format!("{p}.bn2")), stride)?;
            let out = g.push(conv1, &[pre]);
            let out = g.push(Op::Relu, &[out]);
            let out = g.push(w.conv(&format!("{p}.conv2"), None, 1)?, &[out]);
            let shortcut_name = format!("{p}.convShortcut");
            let shortcut = if w.has(&format!("{shortcut_name}.weight")) {
                g.push(w.conv(&shortcut_name, None, stride)?, &[pre])
            } else {
                x
            };
            x = g.push(Op::Add, &[shortcut, out]);
        }
    }
    g.push(w.batch_norm("bn1")?, &[x]);
    g.then(Op::Relu);
    pooled_head(g, w)
}

//! The inference graph an exported model is made of: a short list of operators in
//! topological order, each reading earlier values, with batch normalization already folded
//! into the convolution before it where one exists. It is what [`crate::lower`] builds from a
//! kd architecture, what [`crate::write`] turns into ONNX nodes, and what calibration runs
//! (on libtorch) to record the activation ranges that int8 quantization needs.
//!
//! Value 0 is the graph's input, a batch of float images `[b, c, h, w]` in [0, 1]; value
//! `i + 1` is node `i`'s output; the last node's output is the logits `[b, classes]`.

use tch::Tensor;

/// A value of the graph: 0 the input, `i + 1` the output of node `i`.
pub type ValueId = usize;

/// One operator with its constants.
#[derive(Debug)]
pub enum Op {
    /// Zero padding of the spatial sides (preprocessing built in).
    Pad {
        top: i64,
        left: i64,
        bottom: i64,
        right: i64,
    },
    /// `(x - mean[c]) / std[c]` per channel (preprocessing built in).
    Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
    /// 2-D convolution with bias `[c_out]` and weight `[c_out, c_in, k, k]`, `k // 2` padding.
    Conv {
        weight: Tensor,
        bias: Tensor,
        stride: i64,
    },
    /// Inference batch normalization that no convolution precedes (a pre-activation block).
    BatchNorm {
        gamma: Tensor,
        beta: Tensor,
        mean: Tensor,
        var: Tensor,
        eps: f64,
    },
    Relu,
    /// Max-pooling with a square `kernel` and the same stride.
    MaxPool {
        kernel: i64,
    },
    /// The mean of each feature map, keeping `[b, c, 1, 1]`.
    GlobalAvgPool,
    /// `[b, ...] -> [b, n]`.
    Flatten,
    /// `x · weightᵀ + bias`, weight `[out, in]` (PyTorch's `Linear`).
    Dense {
        weight: Tensor,
        bias: Tensor,
    },
    /// The sum of two values of the same shape (a residual connection).
    Add,
}

impl Op {
    /// The ONNX operator this one is written as (before quantization).
    pub fn onnx_name(&self) -> &'static str {
        match self {
            Op::Pad { .. } => "Pad",
            Op::Normalize { .. } => "Sub+Div",
            Op::Conv { .. } => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::MaxPool { .. } => "MaxPool",
            Op::GlobalAvgPool => "GlobalAveragePool",
            Op::Flatten => "Flatten",
            Op::Dense { .. } => "Gemm",
            Op::Add => "Add",
        }
    }
}

/// An operator and the values it reads.
#[derive(Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
}

/// A whole inference graph.
#[derive(Debug)]
pub struct Graph {
    /// `[c, h, w]` of the input images.
    pub input_shape: [i64; 3],
    pub classes: i64,
    pub nodes: Vec<Node>,
}

impl Graph {
    /// An empty graph for `[c, h, w]` inputs.
    pub fn new(input_shape: [i64; 3], classes: i64) -> Self {
        Self {
            input_shape,
            classes,
            nodes: Vec::new(),
        }
    }

    /// Appends `op` reading `inputs`; returns its output.
    pub fn push(&mut self, op: Op, inputs: &[ValueId]) -> ValueId {
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
        });
        self.nodes.len()
    }

    /// Appends `op` reading the latest value (the input of an empty graph).
    pub fn then(&mut self, op: Op) -> ValueId {
        let last = self.nodes.len();
        self.push(op, &[last])
    }

    /// The value holding the logits.
    pub fn output(&self) -> ValueId {
        self.nodes.len()
    }

    /// The nodes reading each value, by value.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len() + 1];
        for (i, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                out[v].push(i);
            }
        }
        out
    }

    /// The logits for float images `[b, c, h, w]` in [0, 1], computed with libtorch.
    pub fn run(&self, images: &Tensor) -> Tensor {
        self.run_each(images, |_, _| {})
    }

    /// [`Graph::run`], calling `visit(value, tensor)` for the input and every node's output.
    pub fn run_each(&self, images: &Tensor, mut visit: impl FnMut(ValueId, &Tensor)) -> Tensor {
        tch::no_grad(|| {
            let mut values: Vec<Tensor> = vec![images.shallow_clone()];
            visit(0, images);
            for node in &self.nodes {
                let out = apply(&node.op, &node.inputs, &values);
                visit(values.len(), &out);
                values.push(out);
            }
            values.pop().expect("the input is a value")
        })
    }
}

/// One operator on libtorch, with PyTorch's semantics (ONNX's are the same for these).
fn apply(op: &Op, inputs: &[ValueId], values: &[Tensor]) -> Tensor {
    let x = &values[inputs[0]];
    let channel = |v: &[f32]| Tensor::from_slice(v).view([1, v.len() as i64, 1, 1]);
    match op {
        Op::Pad {
            top,
            left,
            bottom,
            right,
        } => x.constant_pad_nd([*left, *right, *top, *bottom]),
        Op::Normalize { mean, std } => (x - channel(mean)) / channel(std),
        Op::Conv {
            weight,
            bias,
            stride,
        } => {
            let padding = weight.size()[2] / 2;
            x.conv2d(
                weight,
                Some(bias),
                [*stride, *stride],
                [padding, padding],
                [1, 1],
                1,
            )
        }
        Op::BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
        } => x.batch_norm(
            Some(gamma),
            Some(beta),
            Some(mean),
            Some(var),
            false,
            0.0,
            *eps,
            false,
        ),
        Op::Relu => x.relu(),
        Op::MaxPool { kernel } => x.max_pool2d_default(*kernel),
        Op::GlobalAvgPool => x.mean_dim([-2i64, -1].as_slice(), true, x.kind()),
        Op::Flatten => x.flatten(1, -1),
        Op::Dense { weight, bias } => x.linear(weight, Some(bias)),
        Op::Add => x + &values[inputs[1]],
    }
}

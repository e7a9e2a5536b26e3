//! A [`Graph`] as an ONNX model (opset 17, IR version 8): one float input `images`
//! `[batch, c, h, w]` in [0, 1], one output `logits` `[batch, classes]`, the batch dimension
//! symbolic, and the caller's metadata in the model's `metadata_props`. With a quantization
//! plan ([`crate::quantize`]) the same operators are written in QDQ form: int8 weights and
//! int32 biases behind `DequantizeLinear`, a `QuantizeLinear`/`DequantizeLinear` pair on
//! each planned activation.

use prost::Message;
use tract_onnx::pb::StringStringEntryProto;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

use crate::graph::{Graph, Op, ValueId};
use crate::proto::{self, Attr};
use crate::quantize::{self, ActQuant};

/// The opset the files declare.
pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
const IR_VERSION: i64 = 8;
pub const INPUT_NAME: &str = "images";
pub const OUTPUT_NAME: &str = "logits";

/// The ONNX model of `graph`, float (`plan = None`) or QDQ int8, encoded.
pub fn encode(
    graph: &Graph,
    plan: Option<&[Option<ActQuant>]>,
    metadata: &[(String, String)],
    producer_version: &str,
) -> Vec<u8> {
    let mut e = Emitter {
        graph,
        plan,
        nodes: Vec::new(),
        initializers: Vec::new(),
        names: vec![String::new(); graph.nodes.len() + 1],
        quant_names: vec![None; graph.nodes.len() + 1],
    };
    e.emit_value(0, INPUT_NAME.into());
    for (i, node) in graph.nodes.iter().enumerate() {
        let value = i + 1;
        let out = if value == graph.output() {
            OUTPUT_NAME.to_string()
        } else {
            format!("v{value}")
        };
        e.emit_node(i, &node.op, &node.inputs, &out);
        e.emit_value(value, out);
    }
    let [c, h, w] = graph.input_shape;
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "kd".into(),
        producer_version: producer_version.into(),
        graph: Some(GraphProto {
            name: "kd".into(),
            node: e.nodes,
            initializer: e.initializers,
            input: vec![proto::batched_f32(INPUT_NAME, &[c, h, w])],
            output: vec![proto::batched_f32(OUTPUT_NAME, &[graph.classes])],
            ..Default::default()
        }),
        metadata_props: metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    };
    model.encode_to_vec()
}

struct Emitter<'a> {
    graph: &'a Graph,
    plan: Option<&'a [Option<ActQuant>]>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// The name each value's readers use (its dequantized copy where it is quantized).
    names: Vec<String>,
    /// The scale and zero-point initializers of each quantized value.
    quant_names: Vec<Option<(String, String)>>,
}

impl Emitter<'_> {
    fn quant(&self, value: ValueId) -> Option<ActQuant> {
        self.plan.and_then(|p| p[value])
    }

    /// Records the name of `value`, first adding its quantize/dequantize pair if planned.
    fn emit_value(&mut self, value: ValueId, raw: String) {
        let Some(q) = self.quant(value) else {
            self.names[value] = raw;
            return;
        };
        let producer_keeps = value
            .checked_sub(1)
            .map(|n| &self.graph.nodes[n])
            .filter(|n| matches!(n.op, Op::MaxPool { .. } | Op::Flatten));
        // A pool or flatten shares its input's scale and zero point tensors.
        let shared = producer_keeps.and_then(|n| self.quant_names[n.inputs[0]].clone());
        let (scale, zero) = match shared {
            Some(names) => names,
            None => {
                let (s, z) = (format!("s{value}"), format!("z{value}"));
                self.initializers
                    .push(proto::f32_tensor(&s, &[], &[q.scale]));
                self.initializers
                    .push(proto::u8_tensor(&z, &[], &[q.zero_point]));
                (s, z)
            }
        };
        let (qn, dq) = (format!("q{value}"), format!("d{value}"));
        self.nodes.push(proto::node(
            "QuantizeLinear",
            &[&raw, &scale, &zero],
            &[&qn],
            &[],
        ));
        self.nodes.push(proto::node(
            "DequantizeLinear",
            &[&qn, &scale, &zero],
            &[&dq],
            &[],
        ));
        self.names[value] = dq;
        self.quant_names[value] = Some((scale, zero));
    }

    fn emit_node(&mut self, index: usize, op: &Op, inputs: &[ValueId], out: &str) {
        let x = self.names[inputs[0]].clone();
        let node = match op {
            Op::Pad {
                top,
                left,
                bottom,
                right,
            } => {
                let pads = format!("pads{index}");
                self.initializers.push(proto::i64_tensor(
                    &pads,
                    &[8],
                    &[0, 0, *top, *left, 0, 0, *bottom, *right],
                ));
                proto::node("Pad", &[&x, &pads], &[out], &[])
            }
            Op::Normalize { mean, std } => {
                self.normalize(index, &x, (mean.as_slice(), std.as_slice()), out)
            }
            Op::Conv {
                weight,
                bias,
                stride,
            } => {
                let k = weight.size()[2];
                let (w, b) = self.weights(index, inputs[0], weight, bias);
                let attrs = [
                    ("kernel_shape", Attr::Ints(vec![k, k])),
                    ("pads", Attr::Ints(vec![k / 2; 4])),
                    ("strides", Attr::Ints(vec![*stride, *stride])),
                ];
                proto::node("Conv", &[&x, &w, &b], &[out], &attrs)
            }
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            } => self.batch_norm(index, &x, [gamma, beta, mean, var], *eps, out),
            Op::Relu => proto::node("Relu", &[&x], &[out], &[]),
            Op::MaxPool { kernel } => {
                let attrs = [
                    ("kernel_shape", Attr::Ints(vec![*kernel; 2])),
                    ("strides", Attr::Ints(vec![*kernel; 2])),
                ];
                proto::node("MaxPool", &[&x], &[out], &attrs)
            }
            Op::GlobalAvgPool => proto::node("GlobalAveragePool", &[&x], &[out], &[]),
            Op::Flatten => proto::node("Flatten", &[&x], &[out], &[("axis", Attr::Int(1))]),
            Op::Dense { weight, bias } => {
                let (w, b) = self.weights(index, inputs[0], weight, bias);
                proto::node("Gemm", &[&x, &w, &b], &[out], &[("transB", Attr::Int(1))])
            }
            Op::Add => {
                let y = self.names[inputs[1]].clone();
                proto::node("Add", &[&x, &y], &[out], &[])
            }
        };
        self.nodes.push(node);
    }

    /// `(x - mean) / std` per channel: a `Sub` node (emitted here) and the `Div` node
    /// returned, with the constants as initializers.
    fn normalize(
        &mut self,
        index: usize,
        x: &str,
        (mean, std): (&[f32], &[f32]),
        out: &str,
    ) -> NodeProto {
        let dims = [1, mean.len() as i64, 1, 1];
        let (m, s, centred) = (
            format!("mean{index}"),
            format!("std{index}"),
            format!("c{index}"),
        );
        self.initializers.push(proto::f32_tensor(&m, &dims, mean));
        self.initializers.push(proto::f32_tensor(&s, &dims, std));
        self.nodes
            .push(proto::node("Sub", &[x, &m], &[&centred], &[]));
        proto::node("Div", &[&centred, &s], &[out], &[])
    }

    /// A `BatchNormalization` node with its four vectors (gamma, beta, mean, var) as
    /// initializers.
    fn batch_norm(
        &mut self,
        index: usize,
        x: &str,
        vectors: [&tch::Tensor; 4],
        eps: f64,
        out: &str,
    ) -> NodeProto {
        let names = ["gamma", "beta", "mean", "var"].map(|n| format!("{n}{index}"));
        for (name, t) in names.iter().zip(vectors) {
            let data = Vec::<f32>::try_from(t).expect("float values");
            self.initializers
                .push(proto::f32_tensor(name, &[data.len() as i64], &data));
        }
        let ins: Vec<&str> = std::iter::once(x)
            .chain(names.iter().map(String::as_str))
            .collect();
        let attrs = [("epsilon", Attr::Float(eps as f32))];
        proto::node("BatchNormalization", &ins, &[out], &attrs)
    }

    /// The names of node `index`'s weight and bias: float initializers, or int8/int32
    /// initializers behind `DequantizeLinear` when the node's input is quantized.
    fn weights(
        &mut self,
        index: usize,
        input: ValueId,
        weight: &tch::Tensor,
        bias: &tch::Tensor,
    ) -> (String, String) {
        let dims = weight.size();
        let (w, b) = (format!("w{index}"), format!("b{index}"));
        let Some(q) = self.quant(input) else {
            let data = Vec::<f32>::try_from(&weight.flatten(0, -1)).expect("float values");
            let bias = Vec::<f32>::try_from(bias).expect("float values");
            self.initializers.push(proto::f32_tensor(&w, &dims, &data));
            self.initializers
                .push(proto::f32_tensor(&b, &[dims[0]], &bias));
            return (w, b);
        };
        let (values, scales) = quantize::per_channel_int8(weight);
        let (bias_values, bias_scales) = quantize::bias_int32(bias, q.scale, &scales);
        let channels = [dims[0]];
        let (ws, wz, bs) = (
            format!("ws{index}"),
            format!("wz{index}"),
            format!("bs{index}"),
        );
        // Zero points are written even where they are 0 (the operators' default):
        // onnxruntime fuses dense layers and pools into integer kernels only when they are.
        self.initializers.push(proto::i8_tensor(&w, &dims, &values));
        self.initializers
            .push(proto::f32_tensor(&ws, &channels, &scales));
        self.initializers
            .push(proto::i8_tensor(&wz, &channels, &vec![0; dims[0] as usize]));
        self.initializers
            .push(proto::i32_tensor(&b, &channels, &bias_values));
        self.initializers
            .push(proto::f32_tensor(&bs, &channels, &bias_scales));
        let axis = [("axis", Attr::Int(0))];
        let (wd, bd) = (format!("wd{index}"), format!("bd{index}"));
        self.nodes.push(proto::node(
            "DequantizeLinear",
            &[&w, &ws, &wz],
            &[&wd],
            &axis,
        ));
        self.nodes
            .push(proto::node("DequantizeLinear", &[&b, &bs], &[&bd], &axis));
        (wd, bd)
    }
}

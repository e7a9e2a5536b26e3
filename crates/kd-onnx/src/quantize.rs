//! Static post-training int8 quantization in ONNX's QDQ form (the operator pairs
//! `QuantizeLinear`/`DequantizeLinear` around float operators, which runtimes fuse into
//! integer kernels; Jacob et al. 2018 for the affine scheme `x ≈ scale·(q − zero_point)`):
//!
//! - weights: int8, symmetric, one scale per output channel (`max |w_c| / 127`);
//! - biases: int32 with scale `input scale × weight scale` of their channel, as integer
//!   convolution and matrix multiplication accumulate;
//! - activations: uint8, asymmetric, one scale per tensor, from the minimum and maximum that
//!   calibration images reach (widened to include 0, so zero is exact);
//! - which activations: every value read by a convolution, dense layer, pool, flatten or
//!   residual sum. A convolution's or dense layer's output that only a ReLU reads is left
//!   float: the pair is quantized after the ReLU, so runtimes fuse conv + ReLU. Pooling and
//!   flatten keep their input's scale (they only move values), as runtimes require to run
//!   them on integers.

use tch::{Kind, Tensor};

use crate::graph::{Graph, Op, ValueId};

/// The affine uint8 quantization of one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActQuant {
    /// The uint8 quantization covering `[min, max]` (and 0).
    pub fn from_range(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        if max - min <= f32::MIN_POSITIVE {
            return Self {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let scale = (max - min) / 255.0;
        let zero_point = (-min / scale).round().clamp(0.0, 255.0) as u8;
        Self { scale, zero_point }
    }
}

/// The minimum and maximum of every value of a graph over calibration batches.
#[derive(Debug, Clone)]
pub struct Calibration {
    ranges: Vec<Option<(f32, f32)>>,
    pub images: usize,
}

impl Calibration {
    /// Runs `graph` on every batch (float images in [0, 1]) and records each value's range.
    pub fn run(graph: &Graph, batches: impl IntoIterator<Item = Tensor>) -> Self {
        let mut ranges: Vec<Option<(f32, f32)>> = vec![None; graph.nodes.len() + 1];
        let mut images = 0;
        for batch in batches {
            images += batch.size()[0] as usize;
            let _logits = graph.run_each(&batch, |value, t| {
                let lo = t.min().double_value(&[]) as f32;
                let hi = t.max().double_value(&[]) as f32;
                let r = &mut ranges[value];
                *r = Some(r.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            });
        }
        Self { ranges, images }
    }
}

/// Whether an operator reads its inputs as integers in the QDQ form.
fn reads_quantized(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. }
            | Op::Dense { .. }
            | Op::MaxPool { .. }
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Add
    )
}

/// Whether an operator only moves values (its output keeps its input's scale).
fn keeps_scale(op: &Op) -> bool {
    matches!(op, Op::MaxPool { .. } | Op::Flatten)
}

/// The quantization of each value of `graph` (`None`: stays float), from `calibration`.
pub fn plan(graph: &Graph, calibration: &Calibration) -> Vec<Option<ActQuant>> {
    let consumers = graph.consumers();
    let mut plan: Vec<Option<ActQuant>> = vec![None; graph.nodes.len() + 1];
    for value in 0..=graph.nodes.len() {
        let read_quantized = consumers[value]
            .iter()
            .any(|&n| reads_quantized(&graph.nodes[n].op));
        if !read_quantized {
            continue;
        }
        let producer = value.checked_sub(1).map(|n| &graph.nodes[n]);
        plan[value] = match producer {
            Some(node) if keeps_scale(&node.op) => plan[node.inputs[0]],
            _ => calibration.ranges[value].map(|(lo, hi)| ActQuant::from_range(lo, hi)),
        };
    }
    plan
}

/// Symmetric int8 per-output-channel quantization of a weight `[out, ...]`: the int8 values
/// in the weight's order and the scale of each output channel.
pub fn per_channel_int8(weight: &Tensor) -> (Vec<i8>, Vec<f32>) {
    let out = weight.size()[0];
    let rows = weight.reshape([out, -1]).to_kind(Kind::Float);
    let max_abs = rows.abs().amax([1i64].as_slice(), false);
    let scales: Vec<f32> = Vec::<f32>::try_from(&max_abs)
        .expect("float values")
        .into_iter()
        .map(|m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let scale_col = Tensor::from_slice(&scales).view([out, 1]);
    let q = (rows / scale_col)
        .round()
        .clamp(-127, 127)
        .to_kind(Kind::Int8);
    let values = Vec::<i8>::try_from(&q.flatten(0, -1)).expect("int8 values");
    (values, scales)
}

/// A bias quantized to int32 with the scale `input_scale × weight_scales[c]` per channel;
/// returns the values and the scales.
pub fn bias_int32(bias: &Tensor, input_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let bias = Vec::<f32>::try_from(&bias.to_kind(Kind::Float)).expect("float values");
    let scales: Vec<f32> = weight_scales.iter().map(|w| w * input_scale).collect();
    let values = bias
        .iter()
        .zip(&scales)
        .map(|(b, s)| (b / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
        .collect();
    (values, scales)
}

/// The values a graph's quantization plan leaves float that a quantized operator reads (a
/// sign of an operator the plan does not cover); empty when the plan is complete.
pub fn uncovered(graph: &Graph, plan: &[Option<ActQuant>]) -> Vec<(ValueId, &'static str)> {
    graph
        .nodes
        .iter()
        .filter(|n| reads_quantized(&n.op))
        .flat_map(|n| n.inputs.iter().map(move |&v| (v, n.op.onnx_name())))
        .filter(|(v, _)| plan[*v].is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activation_range_maps_to_uint8_with_zero_exact() {
        // [-1, 3]: scale 4/255, zero point round(1 / (4/255)) = round(63.75) = 64.
        let q = ActQuant::from_range(-1.0, 3.0);
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(q.zero_point, 64);
        // A range above 0 is widened to start at 0 (after a ReLU: zero point 0).
        let q = ActQuant::from_range(0.5, 2.0);
        assert!((q.scale - 2.0 / 255.0).abs() < 1e-9);
        assert_eq!(q.zero_point, 0);
        // A constant-zero tensor gets a usable scale.
        assert_eq!(ActQuant::from_range(0.0, 0.0).scale, 1.0);
    }

    #[test]
    fn weights_are_quantized_per_output_channel_symmetrically() {
        // Channel 0: max |w| = 1 -> scale 1/127; 0.25 * 127 = 31.75 -> 32, -1 -> -127.
        // Channel 1: all zero -> scale 1 (never a division by zero).
        let w = Tensor::from_slice(&[0.25f32, -1.0, 0.0, 0.0]).view([2, 2]);
        let (q, scales) = per_channel_int8(&w);
        assert_eq!(q, vec![32, -127, 0, 0]);
        assert!((scales[0] - 1.0 / 127.0).abs() < 1e-9);
        assert_eq!(scales[1], 1.0);
    }

    #[test]
    fn a_value_read_by_a_quantized_operator_without_a_plan_is_reported() {
        // input -> conv -> relu -> maxpool -> gap -> flatten -> dense
        let mut g = Graph::new([1, 4, 4], 2);
        let conv = Op::Conv {
            weight: Tensor::ones([2, 1, 3, 3], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            stride: 1,
        };
        g.then(conv);
        g.then(Op::Relu);
        g.then(Op::MaxPool { kernel: 2 });
        g.then(Op::GlobalAvgPool);
        g.then(Op::Flatten);
        g.then(Op::Dense {
            weight: Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        });
        let images = Tensor::rand([3, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
        let mut plan = plan(&g, &Calibration::run(&g, [images]));
        // Quantized: the input, the ReLU's output (not the conv's: fused), the pool's (with
        // the ReLU's scale), the average's and the flatten's; never the logits.
        let planned: Vec<bool> = plan.iter().map(Option::is_some).collect();
        assert_eq!(planned, [true, false, true, true, true, true, false]);
        assert_eq!(plan[3], plan[2]);
        assert!(uncovered(&g, &plan).is_empty());
        plan[4] = None;
        assert_eq!(uncovered(&g, &plan), vec![(4, "Flatten")]);
    }

    #[test]
    fn biases_use_the_input_times_weight_scale() {
        // 0.3 / (0.1 * 0.02) = 150; -0.0031 / 0.002 = -1.55 -> -2.
        let b = Tensor::from_slice(&[0.3f32, -0.0031]);
        let (q, scales) = bias_int32(&b, 0.1, &[0.02, 0.02]);
        assert_eq!(q, vec![150, -2]);
        assert!((scales[0] - 0.002).abs() < 1e-9);
    }
}

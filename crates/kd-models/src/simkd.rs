//! The student SimKD trains (Chen et al., "Knowledge Distillation with the Reused Teacher
//! Classifier", CVPR 2022): the student's layers up to a feature map, a projector onto the
//! teacher's feature of the same stage, then the teacher's own layers after that feature,
//! frozen. The projector is the paper's (and its code's `SimKD.transfer`): 1x1 conv → BN →
//! ReLU → 3x3 conv → BN → ReLU → 1x1 conv → BN → ReLU, bottlenecked to `c_t / factor`
//! channels, convolutions without bias.
//!
//! - The teacher's "classifier" is every teacher layer after the hinted one (in the paper,
//!   the average pool and the dense layer after the last stage); it always runs in
//!   inference mode and never trains. Its weights are variables of the student under
//!   `teacher.`, saved with it, so that the student file alone predicts.
//! - A student map larger than the teacher's is average-pooled to the teacher's size before
//!   the projector (as the paper's code does); a smaller one is refused, since the
//!   teacher's head takes maps of its own size (the paper's code pools the teacher's map
//!   down instead, which only a head with global pooling accepts).
//! - The student's own layers after the hinted one (its classifier) are not part of it.

use std::collections::HashSet;

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::error::{invalid, Result};
use crate::layers::Sequential;

/// A network built in a variable store of its own, from which [`compose`] takes layers.
pub(crate) struct Part {
    /// Its variables.
    pub vs: nn::VarStore,
    /// Its layers.
    pub net: Sequential,
}

/// Names of the layers of the composed student and of its parts.
pub(crate) struct Joints<'a> {
    /// The student layer whose output the projector takes.
    pub student_layer: &'a str,
    /// The teacher layer whose output the projector imitates; the teacher's layers after it
    /// are the head.
    pub teacher_layer: &'a str,
    /// The projector's bottleneck: `c_t / factor` channels.
    pub factor: usize,
}

/// Name prefix of the teacher head's layers and variables in the composed student.
pub const HEAD_PREFIX: &str = "teacher.";

/// Layer name of the projector, whose output the SimKD loss compares with the teacher's
/// feature.
pub const PROJECTOR_LAYER: &str = "projector";

/// The composed student under `root` for inputs of `probe_shape` (`[1, c, h, w]`): the
/// `student`'s layers up to `joints.student_layer` (trainable), the projector, the
/// `teacher`'s layers after `joints.teacher_layer` (frozen, renamed `teacher.*`). Returns
/// the layers and the head's parameter count.
pub(crate) fn compose(
    root: &nn::Path,
    student: Part,
    teacher: Part,
    joints: &Joints,
    probe_shape: [i64; 4],
) -> Result<(Sequential, usize)> {
    let probe = Tensor::zeros(probe_shape, (Kind::Float, root.device()));
    let s = map_shape(
        &student.net,
        &probe,
        "distill.student_layer",
        joints.student_layer,
    )?;
    let t = map_shape(
        &teacher.net,
        &probe,
        "distill.teacher_layer",
        joints.teacher_layer,
    )?;
    if s[2] < t[2] || s[3] < t[3] {
        return Err(invalid(
            "distill.student_layer",
            &format!(
                "a layer whose maps are at least the teacher layer's {}x{} (SimKD feeds the teacher's head maps of that size)",
                t[2], t[3]
            ),
            format!("{} ({}x{})", joints.student_layer, s[2], s[3]),
        ));
    }
    let mut net = student.net;
    net.split_after(joints.student_layer).expect("probed above");
    adopt(&student.vs, root, &net, true);
    let pool_to = (s[2] != t[2] || s[3] != t[3]).then_some([t[2], t[3]]);
    let projector = Projector::new(
        &(root / PROJECTOR_LAYER),
        s[1],
        t[1],
        joints.factor,
        pool_to,
    );
    net.push(PROJECTOR_LAYER, "SimKdProjector", projector);
    let mut teacher_net = teacher.net;
    let head = teacher_net
        .split_after(joints.teacher_layer)
        .expect("probed above");
    let head_name = HEAD_PREFIX.trim_end_matches('.');
    let frozen = adopt(&teacher.vs, &(root / head_name), &head, false);
    net.extend(head.inference_only(head_name));
    Ok((net, frozen))
}

/// The `[b, c, h, w]` shape of `layer`'s output for `probe`; `key` names the layer's key in
/// the error for a missing layer or one without a feature map.
fn map_shape(net: &Sequential, probe: &Tensor, key: &str, layer: &str) -> Result<Vec<i64>> {
    let Some(out) = tch::no_grad(|| net.forward_until(probe, false, layer)) else {
        let names: Vec<&str> = net.layers().iter().map(|l| l.name.as_str()).collect();
        return Err(invalid(key, &format!("one of the layers {names:?}"), layer));
    };
    let size = out.size();
    if size.len() != 4 {
        return Err(invalid(
            key,
            "a layer with a [c, h, w] output",
            format!("{layer}, which gives {:?}", &size[1..]),
        ));
    }
    Ok(size)
}

/// Registers under `path` the variables of `from` that belong to the layers of `net`
/// (trainable where they were, if `trainable`; otherwise frozen), so that they are saved and
/// loaded with the composed model; returns the number of parameters registered that were
/// trainable in `from`.
fn adopt(from: &nn::VarStore, path: &nn::Path, net: &Sequential, trainable: bool) -> usize {
    let was_trainable: HashSet<usize> = from
        .trainable_variables()
        .iter()
        .map(|t| t.data_ptr() as usize)
        .collect();
    let prefixes: Vec<String> = net
        .layers()
        .iter()
        .map(|l| format!("{}.", l.name))
        .collect();
    let mut parameters = 0;
    for (name, tensor) in from.variables() {
        if !prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            continue;
        }
        let parameter = was_trainable.contains(&(tensor.data_ptr() as usize));
        if parameter {
            parameters += tensor.numel();
        }
        let tensor = if trainable {
            tensor
        } else {
            tensor.set_requires_grad(false)
        };
        let mut segments: Vec<&str> = name.split('.').collect();
        let last = segments.pop().expect("a variable has a name");
        let parent = segments.iter().fold(path.clone(), |p, s| &p / *s);
        let _registered = parent.add(last, tensor, trainable && parameter);
    }
    parameters
}

/// SimKD's projector: `[b, c_s, h, w]` → `[b, c_t, h_t, w_t]`.
#[derive(Debug)]
struct Projector {
    /// The teacher's map size where the student's is larger (pooled to it first).
    pool_to: Option<[i64; 2]>,
    layers: Sequential,
}

impl Projector {
    fn new(p: &nn::Path, c_s: i64, c_t: i64, factor: usize, pool_to: Option<[i64; 2]>) -> Self {
        let mid = (c_t / factor as i64).max(1);
        let conv = |k: i64| nn::ConvConfig {
            padding: k / 2,
            bias: false,
            ..Default::default()
        };
        let mut layers = Sequential::new();
        let mut c_in = c_s;
        for (i, (c_out, k)) in [(mid, 1), (mid, 3), (c_t, 1)].into_iter().enumerate() {
            let i = 3 * i;
            layers.push(
                format!("{i}"),
                "Conv2d",
                nn::conv2d(p / i, c_in, c_out, k, conv(k)),
            );
            layers.push(
                format!("{}", i + 1),
                "BatchNorm2d",
                nn::batch_norm2d(p / (i + 1), c_out, Default::default()),
            );
            layers.push_fn(format!("{}", i + 2), "ReLU", |x| x.relu());
            c_in = c_out;
        }
        Self { pool_to, layers }
    }
}

impl ModuleT for Projector {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self.pool_to {
            Some(size) => self.layers.forward_t(&x.adaptive_avg_pool2d(size), train),
            None => self.layers.forward_t(x, train),
        }
    }
}

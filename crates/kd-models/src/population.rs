//! K students of the seed's family ([`crate::student`]) trained as one fused model —
//! horizontally fused training (HFTA; Wang et al., MLSys 2021): every member's weights
//! stacked along a member axis, all members reading the same batch.
//!
//! - The first convolution sees the shared input: the members' kernels stacked on the
//!   output-channel axis make one plain convolution, `[b, c, h, w] -> [b, K·w, h, w]`.
//! - Every later convolution is a grouped convolution with `groups = K`: member k's
//!   channels `k·w .. (k+1)·w` are convolved with member k's kernel only.
//! - ReLU and max-pool act per channel, so per member; global average pooling likewise.
//! - The dense layers are one batched matmul: `[K, b, w] x [K, w, classes] -> [K, b, classes]`.
//! - Several members compute in channels-last (NHWC) memory format, weights and input:
//!   libtorch's max-pool is 4-5x faster there and oneDNN's grouped convolutions no slower
//!   (measured on a Zen 4 CPU, batch 32, 16-channel groups; an im2col + batched-matmul
//!   layout was 4-9x slower than grouped convolutions).
//!
//! That is [`Layout::Grouped`]. In [`Layout::Members`] (and for a single member) each
//! member instead runs a solo student's own operations — plain convolutions in the solo
//! model's memory format, its dense layer — on its slice of the stacked weights: its
//! logits and gradients are its solo fit's bit for bit, and the fusion saves only what the
//! members share (the batch, the teacher's logits, one backward and one optimizer call).
//!
//! No member's output depends on another's weights, so the gradient of the sum of the
//! members' losses with respect to member k's slice is member k's own gradient, and an
//! element-wise optimizer (Adam) steps each member as its solo fit would (up to the rounding
//! of grouped against plain convolutions).
//!
//! Parameter names are a solo student's (`features.0.weight`, `classifier.bias`, …) with the
//! member axis first where the solo tensor has none: conv weights `[K·out, in, 3, 3]`, conv
//! biases `[K·out]`, the classifier `[K, classes, w]` and `[K, classes]`.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::conv_stack::Stage;
use crate::error::{invalid, Result};
use crate::memory_format;
use crate::model::Model;
use crate::precision::Precision;
use crate::student::StudentConfig;

/// How a population's members compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Fused: grouped convolutions over the members' stacked channels, channels-last, one
    /// batched matmul for the dense layers. Rounds differently from a solo student (a
    /// member's weights drift from its solo fit's by about 1e-6 relative after 30 steps).
    #[default]
    Grouped,
    /// Each member a solo student's operations on its own weights: bit for bit its solo
    /// fit (one machine, same threads), at about the speed of training the members alone.
    Members,
}

impl Layout {
    /// Its name in configs: `grouped`, `members`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grouped => "grouped",
            Self::Members => "members",
        }
    }

    /// The layout named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Grouped, Self::Members]
            .into_iter()
            .find(|l| l.name() == name)
    }
}

/// A population of students of one [`StudentConfig`].
#[derive(Debug)]
pub struct StudentPopulation {
    vs: nn::VarStore,
    stages: Vec<Stage>,
    members: i64,
    /// The members' precision (autocast of [`StudentPopulation::forward_t`]).
    precision: Precision,
    /// Whether it computes in channels-last memory format (several grouped members, or
    /// members that do).
    channels_last: bool,
    layout: Layout,
}

impl StudentPopulation {
    /// Stacks the weights of `members`' variable stores — each a solo student of `config`
    /// (its own initial weights, as its solo fit would draw them) — into one population.
    pub fn stack(
        config: &StudentConfig,
        members: &[&nn::VarStore],
        device: Device,
    ) -> Result<Self> {
        Self::stack_in(config, members, device, members.len() > 1)
    }

    /// [`StudentPopulation::stack`], computing channels-last if `channels_last`.
    fn stack_in(
        config: &StudentConfig,
        members: &[&nn::VarStore],
        device: Device,
        channels_last: bool,
    ) -> Result<Self> {
        if members.is_empty() {
            return Err(invalid("population", "at least one member", 0));
        }
        let vs = nn::VarStore::new(device);
        let names = solo_names(config);
        let root = vs.root();
        for name in &names {
            let parts: Vec<Tensor> = members
                .iter()
                .map(|m| {
                    m.variables()
                        .get(name)
                        .map(|t| t.detach().to_device(device))
                        .ok_or_else(|| {
                            invalid("population", &format!("a student with {name}"), "none")
                        })
                })
                .collect::<Result<_>>()?;
            // Conv tensors concatenate on the channel axis; the classifier's stack.
            let stacked = if name.starts_with("classifier") {
                Tensor::f_stack(&parts, 0)
            } else {
                Tensor::f_cat(&parts, 0)
            }
            .map_err(|_| {
                invalid(
                    "population",
                    &format!("members of one shape ({name})"),
                    "members of different shapes",
                )
            })?;
            let (path, leaf) = name.rsplit_once('.').expect("a dotted name");
            let at = path.split('.').fold(root.clone(), |p, part| p / part);
            let mut var = at.var_copy(leaf, &stacked);
            if channels_last && var.dim() == 4 {
                let nhwc = memory_format::channels_last(&var);
                tch::no_grad(|| var.set_data(&nhwc));
            }
        }
        Ok(Self {
            vs,
            stages: config.stages(),
            members: members.len() as i64,
            precision: Precision::F32,
            channels_last,
            layout: Layout::Grouped,
        })
    }

    /// The population of `models`, students of `config` on one device, computing in one
    /// precision (theirs) and in `layout`: their current weights stacked. Several grouped
    /// members compute in channels-last memory format (libtorch's max-pool is several times
    /// faster there, and its grouped convolutions no slower: measured); members computing
    /// alone, in their models' format.
    pub fn of_models(config: &StudentConfig, models: &[&Model], layout: Layout) -> Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| invalid("population", "at least one member", 0))?;
        let same = |m: &&Model| {
            m.precision() == first.precision()
                && m.var_store().device() == first.var_store().device()
        };
        if !models.iter().all(same) {
            return Err(invalid(
                "population",
                "members of one precision and device",
                "members that differ",
            ));
        }
        let stores: Vec<&nn::VarStore> = models.iter().map(|m| m.var_store()).collect();
        let channels_last = (models.len() > 1 && layout == Layout::Grouped)
            || models.iter().all(|m| m.is_channels_last());
        let device = first.var_store().device();
        let mut population = Self::stack_in(config, &stores, device, channels_last)?;
        population.precision = first.precision();
        population.layout = layout;
        Ok(population)
    }

    /// The population's variables (what an optimizer steps and a checkpoint saves).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// How many members.
    pub fn members(&self) -> usize {
        self.members as usize
    }

    /// How the members compute.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Every member's float32 logits for the same images, `[b, c, h, w] -> [K, b, classes]`,
    /// computed in the members' precision as each [`Model::forward_t`] computes its own (a
    /// student has no layer that trains differently).
    pub fn forward_t(&self, images: &Tensor) -> Tensor {
        let images = if self.channels_last && !memory_format::is_channels_last(images) {
            memory_format::channels_last(images)
        } else {
            images.shallow_clone()
        };
        self.precision
            .forward(self.vs.device(), || self.forward(&images))
    }

    /// Every member's logits, each computed by a solo student's operations on its slice of
    /// the stacked weights ([`Layout::Members`]).
    fn forward_members(&self, images: &Tensor) -> Tensor {
        let vars = self.vs.variables();
        let k = self.members;
        let split = |name: &str| -> Vec<Tensor> {
            let t = &vars[name];
            if name.starts_with("classifier") {
                t.unbind(0)
            } else {
                t.chunk(k, 0)
            }
        };
        let mut xs: Vec<Tensor> = (0..k).map(|_| images.shallow_clone()).collect();
        let mut index = 0usize;
        for stage in &self.stages {
            match stage {
                Stage::Conv(_) => {
                    let ws = split(&format!("features.{index}.weight"));
                    let bs = split(&format!("features.{index}.bias"));
                    for (m, x) in xs.iter_mut().enumerate() {
                        *x = x
                            .conv2d(&ws[m], Some(&bs[m]), [1, 1], [1, 1], [1, 1], 1)
                            .relu();
                    }
                    index += 2;
                }
                Stage::Pool => {
                    for x in xs.iter_mut() {
                        *x = x.max_pool2d_default(2);
                    }
                    index += 1;
                }
            }
        }
        let ws = split("classifier.weight");
        let bs = split("classifier.bias");
        let logits: Vec<Tensor> = xs
            .iter()
            .enumerate()
            .map(|(m, x)| {
                x.mean_dim([-2i64, -1].as_slice(), false, x.kind())
                    .linear(&ws[m], Some(&bs[m]))
            })
            .collect();
        Tensor::stack(&logits, 0)
    }

    /// Every member's logits for the same images: `[b, c, h, w] -> [K, b, classes]`.
    pub fn forward(&self, images: &Tensor) -> Tensor {
        if self.layout == Layout::Members || self.members == 1 {
            self.forward_members(images)
        } else {
            self.forward_grouped(images)
        }
    }

    /// Every member's logits from grouped convolutions over the stacked channels
    /// ([`Layout::Grouped`]).
    fn forward_grouped(&self, images: &Tensor) -> Tensor {
        let vars = self.vs.variables();
        let k = self.members;
        let mut x = images.shallow_clone();
        let (mut index, mut first) = (0usize, true);
        for stage in &self.stages {
            match stage {
                Stage::Conv(_) => {
                    let weight = &vars[&format!("features.{index}.weight")];
                    let bias = &vars[&format!("features.{index}.bias")];
                    let groups = if first { 1 } else { k };
                    x = x
                        .conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], groups)
                        .relu();
                    (index, first) = (index + 2, false);
                }
                Stage::Pool => {
                    x = x.max_pool2d_default(2);
                    index += 1;
                }
            }
        }
        // [b, K·w, h', w'] -> [b, K·w] -> [K, b, w]
        let b = x.size()[0];
        let pooled = x.mean_dim([-2i64, -1].as_slice(), false, x.kind());
        let per_member = pooled.view([b, k, -1]).transpose(0, 1);
        let weight = &vars["classifier.weight"]; // [K, classes, w]
        let bias = &vars["classifier.bias"]; // [K, classes]
        per_member.bmm(&weight.transpose(1, 2)) + bias.unsqueeze(1)
    }

    /// Copies member `k`'s weights into `into`, the variables of a solo student of the
    /// population's shape (its own model, to validate, save or checkpoint).
    pub fn write_member(&self, k: usize, into: &nn::VarStore) -> Result<()> {
        let mut target = into.variables();
        tch::no_grad(|| {
            for (name, t) in self.member(k) {
                let dst = target.get_mut(&name).ok_or_else(|| {
                    invalid(
                        "population member",
                        &format!("a student with {name}"),
                        "none",
                    )
                })?;
                dst.f_copy_(&t).map_err(|_| {
                    invalid(
                        "population member",
                        &format!("{name} of shape {:?}", t.size()),
                        format!("{:?}", dst.size()),
                    )
                })?;
            }
            Ok(())
        })
    }

    /// Member `k`'s weights under a solo student's names and shapes (copies), to load
    /// into its own model, save or compare.
    pub fn member(&self, k: usize) -> Vec<(String, Tensor)> {
        let n = self.members;
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.into_iter()
            .map(|(name, t)| {
                let t = if name.starts_with("classifier") {
                    t.get(k as i64)
                } else {
                    t.chunk(n, 0).swap_remove(k)
                };
                (name, t.detach().copy())
            })
            .collect()
    }
}

/// The variable names of a solo student of `config`.
fn solo_names(config: &StudentConfig) -> Vec<String> {
    let mut names = Vec::new();
    let mut index = 0;
    for stage in config.stages() {
        match stage {
            Stage::Conv(_) => {
                names.push(format!("features.{index}.weight"));
                names.push(format!("features.{index}.bias"));
                index += 2;
            }
            Stage::Pool => index += 1,
        }
    }
    names.extend([
        "classifier.weight".to_string(),
        "classifier.bias".to_string(),
    ]);
    names
}

/// The sum over members of each member's mean cross-entropy on the same `labels`: its
/// gradient in member k's slice is member k's solo gradient.
pub fn population_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let k = logits.size()[0];
    let per_member: Vec<Tensor> = (0..k)
        .map(|m| logits.get(m).cross_entropy_for_logits(labels))
        .collect();
    Tensor::stack(&per_member, 0).sum(Kind::Float)
}

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
//!   layout was 4-9x slower than grouped convolutions). One member computes exactly as a
//!   solo student: plain convolutions in its layout, its dense layer, bit for bit.
//!
//! No member's output depends on another's weights, so the gradient of the sum of the
//! members' losses with respect to member k's slice is member k's own gradient, and an
//! element-wise optimizer (Adam) steps each member as its solo fit would (up to the rounding
//! of grouped against plain convolutions).
//!
//! Parameter names are a solo student's (`features.0.weight`, `classifier.bias`, …) with the
//! member axis first where the solo tensor has none: conv weights `[K·out, in, 3, 3]`, conv
//! biases `[K·out]`, the classifier `[K, classes, w]` and `[K, classes]`.

use tch::{nn, Device, Kind, Tensor};

use crate::conv_stack::Stage;
use crate::error::{invalid, Result};
use crate::memory_format;
use crate::model::Model;
use crate::precision::Precision;
use crate::student::StudentConfig;

/// A population of students of one [`StudentConfig`].
#[derive(Debug)]
pub struct StudentPopulation {
    vs: nn::VarStore,
    stages: Vec<Stage>,
    members: i64,
    /// The members' precision (autocast of [`StudentPopulation::forward_t`]).
    precision: Precision,
    /// Whether it computes in channels-last memory format (several members, or one that
    /// does).
    channels_last: bool,
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
        })
    }

    /// The population of `models`, students of `config` on one device, computing in one
    /// precision (theirs): their current weights stacked. Several members compute in
    /// channels-last memory format (libtorch's max-pool is several times faster there, and
    /// its grouped convolutions no slower: measured); one member in its own format.
    pub fn of_models(config: &StudentConfig, models: &[&Model]) -> Result<Self> {
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
        let channels_last = models.len() > 1 || models.iter().all(|m| m.is_channels_last());
        let device = first.var_store().device();
        let mut population = Self::stack_in(config, &stores, device, channels_last)?;
        population.precision = first.precision();
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

    /// Every member's logits for the same images: `[b, c, h, w] -> [K, b, classes]`.
    pub fn forward(&self, images: &Tensor) -> Tensor {
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
        if k == 1 {
            // A solo student's dense layer, operation for operation.
            let bias = bias.get(0);
            return per_member
                .get(0)
                .linear(&weight.get(0), Some(&bias))
                .unsqueeze(0);
        }
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

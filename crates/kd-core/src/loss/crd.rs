//! Contrastive representation distillation (Tian, Krishnan & Isola 2020, "Contrastive
//! Representation Distillation", ICLR): the student's embedding of an image must pick out
//! the teacher's embedding of the same image among the teacher's embeddings of many other
//! images (and the reverse), a contrastive (NCE) bound on the mutual information between the
//! two representations. As the authors' code (HobbitLong/RepDistiller, `crd/`):
//!
//! ```text
//! v_s = normalize(W_s e_s), v_t = normalize(W_t e_t)      # trainable linear heads to `feat_dim`
//! memory banks M_s, M_t [n images, feat_dim], one row per training image
//! for each row i: its own image and `negatives` images drawn uniformly
//!   p_t = exp(<M_s[j], v_t> / T) / Z_t,  p_s = exp(<M_t[j], v_s> / T) / Z_s   (j = i, negatives)
//!   Z fixed at the first batch: mean(exp(...)) * n
//! NCE(p) = -mean_i [ log(p_i / (p_i + K/n)) + sum_neg log((K/n) / (p_neg + K/n)) ]
//! ce_weight * CE(s, y) + crd_weight * (NCE(p_s) + NCE(p_t))
//! then M[i] = normalize(momentum * M[i] + (1 - momentum) * v) for the batch's images
//! ```
//!
//! `e` is the hinted layer's output, global-average-pooled as [`super::rkd::embedding`]
//! does (RepDistiller takes the pooled penultimate feature). Defaults as the paper: 128
//! dimensions, `T = 0.07`, momentum 0.5, 16,384 negatives, weight 0.8 with CE 1. The banks
//! start uniform in `±1/sqrt(feat_dim / 3)` and, with `Z` (`-1` until set), live in the
//! student's variable store beside the heads (under `aux.`: checkpointed, so resume is
//! exact, and never saved with the student). Negatives are drawn from libtorch's global
//! generator, which checkpoints also keep. The bank indexes training images: a validation
//! batch gets the label term alone, and the bank is updated only by training batches. A
//! training set with no more images than `negatives` is a config error.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::feature::{check_layer, normalize, FeatureLoss};
use super::rkd::embedding;
use super::{check_nonnegative, check_temperature, check_unit, label_term, LossParts};
use crate::error::{CoreError, Result};

/// Hyperparameters of [`Crd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrdConfig {
    /// The student layer whose output is its embedding.
    pub student_layer: String,
    /// The teacher layer whose output is the target embedding.
    pub teacher_layer: String,
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    /// Weight of the contrastive term.
    pub crd_weight: f64,
    /// Dimensions of the heads' output.
    pub feat_dim: usize,
    /// Negatives per row.
    pub negatives: usize,
    /// Temperature of the contrast.
    pub temperature: f64,
    /// Momentum of the memory banks' update.
    pub momentum: f64,
}

impl Default for CrdConfig {
    /// The paper's CIFAR-100 setting on the FitNets layers of the seed's models.
    fn default() -> Self {
        Self {
            student_layer: "features.13".into(),
            teacher_layer: "features.9".into(),
            ce_weight: 1.0,
            crd_weight: 0.8,
            feat_dim: 128,
            negatives: 16_384,
            temperature: 0.07,
            momentum: 0.5,
        }
    }
}

impl CrdConfig {
    /// Checks the values; `key` prefixes error messages.
    pub fn validate(&self, key: &str) -> Result<()> {
        check_layer(key, "student_layer", &self.student_layer)?;
        check_layer(key, "teacher_layer", &self.teacher_layer)?;
        check_nonnegative(key, "ce_weight", self.ce_weight)?;
        check_nonnegative(key, "crd_weight", self.crd_weight)?;
        check_temperature(key, self.temperature)?;
        check_unit(key, "momentum", self.momentum)?;
        for (field, value) in [("feat_dim", self.feat_dim), ("negatives", self.negatives)] {
            if value == 0 {
                return Err(invalid(key, field, "a count >= 1", value));
            }
        }
        Ok(())
    }

    /// Builds the loss for `images` training images and embeddings of `channels` (the
    /// student's, the teacher's), its heads and banks under `path` (in the student's
    /// variable store, so that they train and are checkpointed with it).
    pub fn build(
        &self,
        key: &str,
        path: &nn::Path,
        [student_channels, teacher_channels]: [i64; 2],
        images: usize,
    ) -> Result<Crd> {
        self.validate(key)?;
        if images <= self.negatives {
            return Err(invalid(
                key,
                "negatives",
                &format!("fewer negatives than the {images} training images of the bank"),
                self.negatives,
            ));
        }
        let dim = self.feat_dim as i64;
        let head =
            |name: &str, inputs: i64| nn::linear(path / name, inputs, dim, Default::default());
        let stdv = 1.0 / (self.feat_dim as f64 / 3.0).sqrt();
        let bank = |name: &str| {
            let bank = path.zeros_no_train(name, &[images as i64, dim]);
            tch::no_grad(|| bank.shallow_clone().uniform_(-stdv, stdv))
        };
        let scalar = |name: &str| {
            let z = path.zeros_no_train(name, &[]);
            tch::no_grad(|| z.shallow_clone().fill_(-1.0))
        };
        Ok(Crd {
            config: self.clone(),
            head_s: head("embed_s", student_channels),
            head_t: head("embed_t", teacher_channels),
            bank_s: bank("memory_s"),
            bank_t: bank("memory_t"),
            z_s: scalar("z_s"),
            z_t: scalar("z_t"),
        })
    }
}

fn invalid(key: &str, field: &str, expected: &str, got: impl ToString) -> CoreError {
    CoreError::InvalidConfig {
        key: format!("{key}.{field}"),
        expected: expected.into(),
        got: got.to_string(),
    }
}

/// CRD with its heads, memory banks and normalizing constants (see the module
/// documentation).
#[derive(Debug)]
pub struct Crd {
    config: CrdConfig,
    head_s: nn::Linear,
    head_t: nn::Linear,
    bank_s: Tensor,
    bank_t: Tensor,
    z_s: Tensor,
    z_t: Tensor,
}

impl Crd {
    /// The bank rows each row contrasts with `[b, 1 + negatives]`: its own image first.
    fn contrast_rows(&self, rows: &Tensor) -> Tensor {
        let n = self.bank_s.size()[0];
        let b = rows.size()[0];
        let k = self.config.negatives as i64;
        let negatives = Tensor::randint(n, [b, k], (Kind::Int64, Device::Cpu));
        Tensor::cat(&[rows.to_device(Device::Cpu).view([b, 1]), negatives], 1)
    }

    /// `exp(<bank[rows], v> / T) / Z` `[b, 1 + negatives]`, `Z` set on first use. The
    /// products come from one `[b, n]` matrix product with a copy of the bank (the backward
    /// pass needs it as it was; the bank is updated before then), then gathered: one copy
    /// of `n` rows instead of `b * (1 + negatives)` (with the paper's 16,384 negatives, far
    /// more rows than the bank has), and the same values.
    fn scores(&self, bank: &Tensor, contrast: &Tensor, v: &Tensor, z: &Tensor) -> Tensor {
        let all = v.mm(&bank.copy().tr());
        let picked = all.gather(1, &contrast.to_device(bank.device()), false);
        let out = (picked / self.config.temperature).exp();
        if z.double_value(&[]) < 0.0 {
            let n = bank.size()[0] as f64;
            let set = tch::no_grad(|| out.mean(Kind::Float) * n);
            tch::no_grad(|| z.shallow_clone().copy_(&set));
        }
        out / z
    }

    /// The NCE loss of scores `[b, 1 + K]` whose first column is the positive.
    fn nce(&self, p: &Tensor) -> Tensor {
        let b = p.size()[0] as f64;
        let noise = self.config.negatives as f64 / self.bank_s.size()[0] as f64;
        let eps = 1e-7;
        let positive = (p.narrow(1, 0, 1) / (p.narrow(1, 0, 1) + noise + eps)).log();
        let rest = p.narrow(1, 1, p.size()[1] - 1);
        let negative = (noise / (rest + noise + eps)).log();
        -(positive.sum(Kind::Float) + negative.sum(Kind::Float)) / b
    }

    /// The contrastive term (both directions) of a training batch's features whose images
    /// are the training set's `rows`, against the bank rows `contrast` `[b, 1 + negatives]`
    /// (each row's own image first); then updates the banks' rows of the batch.
    pub fn contrastive(
        &self,
        [student, teacher]: [&Tensor; 2],
        rows: &Tensor,
        contrast: &Tensor,
    ) -> Tensor {
        let v_s = normalize(&nn::Module::forward(&self.head_s, &embedding(student)), 1);
        let v_t = normalize(&nn::Module::forward(&self.head_t, &embedding(teacher)), 1);
        let p_t = self.scores(&self.bank_s, contrast, &v_t, &self.z_t);
        let p_s = self.scores(&self.bank_t, contrast, &v_s, &self.z_s);
        let loss = self.nce(&p_s) + self.nce(&p_t);
        self.update(rows, &v_s, &v_t);
        loss
    }

    /// Moves the banks' rows of the batch towards its embeddings.
    fn update(&self, rows: &Tensor, v_s: &Tensor, v_t: &Tensor) {
        let m = self.config.momentum;
        tch::no_grad(|| {
            for (bank, v) in [(&self.bank_s, v_s), (&self.bank_t, v_t)] {
                let rows = rows.to_device(bank.device());
                let old = bank.index_select(0, &rows);
                let new = normalize(&(old * m + v.detach() * (1.0 - m)), 1);
                let _ = bank.shallow_clone().index_copy_(0, &rows, &new);
            }
        });
    }
}

impl FeatureLoss for Crd {
    fn layers(&self) -> [&str; 2] {
        [&self.config.student_layer, &self.config.teacher_layer]
    }

    /// Without the training images' indices: the label term alone.
    fn loss(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
    ) -> LossParts {
        self.loss_on(
            student_logits,
            student_feature,
            teacher_feature,
            labels,
            None,
        )
    }

    fn loss_on(
        &self,
        student_logits: &Tensor,
        student_feature: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
        rows: Option<&Tensor>,
    ) -> LossParts {
        let contrast = match rows {
            Some(rows) => {
                let features = [student_feature, teacher_feature];
                self.contrastive(features, rows, &self.contrast_rows(rows))
            }
            None => Tensor::zeros([], (Kind::Float, student_logits.device())),
        };
        let hard = label_term(student_logits, labels);
        LossParts {
            total: &hard * self.config.ce_weight + &contrast * self.config.crd_weight,
            parts: vec![("student_loss", hard), ("contrastive_loss", contrast)],
        }
    }

    fn capturable(&self) -> bool {
        false
    }
}

//! Evaluation passes: loss and accuracy over a whole split, and the logits of every image
//! (used to cache a teacher's predictions). Both run in inference mode under `no_grad`.

use std::time::Instant;

use kd_models::Network;
use tch::{Kind, Tensor};

use crate::batches::BatchSource;
use crate::error::Result;
use crate::metrics::{accumulate, DeviceSums};
use kd_core::Split;

use crate::objective::Objective;

/// Result of evaluating a model on one split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Mean of the objective's loss.
    pub loss: f64,
    /// Top-1 accuracy, a fraction in [0, 1].
    pub accuracy: f64,
    /// Mean cross-entropy against the labels (equal to `loss` for a cross-entropy
    /// objective).
    pub cross_entropy: f64,
    /// Images evaluated.
    pub images: usize,
    /// Images per second of the pass.
    pub images_per_s: f64,
}

/// Loss (under `objective`) and top-1 accuracy of `model` over every batch of `loader`.
pub fn evaluate(
    model: &dyn Network,
    loader: &dyn BatchSource,
    objective: &Objective,
    split: Split,
) -> Result<Evaluation> {
    Ok(evaluate_pass(model, loader, objective, split, None)?.0)
}

/// [`evaluate`], and in the same pass the confusion matrix over `classes` classes:
/// `confusion[t][p]` images with label `t` predicted as `p`.
pub fn evaluate_with_confusion(
    model: &dyn Network,
    loader: &dyn BatchSource,
    objective: &Objective,
    split: Split,
    classes: usize,
) -> Result<(Evaluation, Vec<Vec<i64>>)> {
    let (evaluation, counts) = evaluate_pass(model, loader, objective, split, Some(classes))?;
    let counts: Vec<i64> = counts.map_or_else(
        || vec![0; classes * classes],
        |t| Vec::try_from(t.to_device(tch::Device::Cpu)).expect("i64 counts"),
    );
    let confusion = counts.chunks(classes.max(1)).map(<[i64]>::to_vec).collect();
    Ok((evaluation, confusion))
}

/// One pass over `loader`; with `classes`, also the flat confusion counts (a bincount of
/// `label * classes + prediction`).
fn evaluate_pass(
    model: &dyn Network,
    loader: &dyn BatchSource,
    objective: &Objective,
    split: Split,
    classes: Option<usize>,
) -> Result<(Evaluation, Option<Tensor>)> {
    let start = Instant::now();
    let mut sums = PassSums::default();
    let mut counts: Option<Tensor> = None;
    let _no_grad = tch::no_grad_guard();
    loader.for_each_batch(0, &mut |batch| {
        let (logits, out) = objective.forward_loss(model, &batch, split, false);
        sums.add(&logits, &batch.labels, &out);
        if let Some(k) = classes.map(|k| k as i64) {
            let cells = &batch.labels * k + logits.argmax(-1, false);
            let batch_counts = cells.bincount(None::<Tensor>, k * k).to_kind(Kind::Int64);
            counts = Some(match counts.take() {
                Some(c) => c + batch_counts,
                None => batch_counts,
            });
        }
        Ok(())
    })?;
    let evaluation = sums.evaluation(start);
    Ok((evaluation, counts))
}

/// What an evaluation pass adds up, batch by batch, on the device: the objective's loss and
/// accuracy, and the cross-entropy against the labels.
#[derive(Default)]
pub(crate) struct PassSums {
    sums: DeviceSums,
    cross_entropy: Option<Tensor>,
}

impl PassSums {
    /// Adds a batch's `logits` and loss `out` against `labels`.
    pub(crate) fn add(&mut self, logits: &Tensor, labels: &Tensor, out: &kd_core::LossParts) {
        self.sums.add(logits, labels, out);
        let b = labels.size()[0] as f64;
        let ce = logits
            .cross_entropy_for_logits(labels)
            .to_kind(Kind::Double)
            * b;
        accumulate(&mut self.cross_entropy, ce);
    }

    /// The pass's evaluation (read from the device), begun at `start`.
    pub(crate) fn evaluation(self, start: Instant) -> Evaluation {
        let ce_sum = self.cross_entropy.map_or(0.0, |t| t.double_value(&[]));
        let sums = self.sums.read();
        Evaluation {
            loss: sums.loss,
            accuracy: sums.accuracy(),
            cross_entropy: ce_sum / sums.images.max(1) as f64,
            images: sums.images,
            images_per_s: sums.images as f64 / start.elapsed().as_secs_f64(),
        }
    }
}

/// The logits `[n, classes]` (f32) of every image of `loader`'s dataset, row `i` for image
/// `i` whatever order the loader visits them in.
pub fn predict_logits(model: &dyn Network, loader: &dyn BatchSource) -> Result<Tensor> {
    let cache = crate::cache_teacher_logits(model, loader, kd_core::CacheDtype::F32)?;
    Ok(cache.logits().shallow_clone())
}

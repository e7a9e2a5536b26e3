//! Evaluation passes: loss and accuracy over a whole split, and the logits of every image
//! (used to cache a teacher's predictions). Both run in inference mode under `no_grad`.

use std::time::Instant;

use kd_data::BatchLoader;
use kd_models::Model;
use tch::{Kind, Tensor};

use crate::metrics::RunningMean;
use crate::objective::{Objective, Split};

/// Result of evaluating a model on one split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    pub images_per_s: f64,
}

/// Number of correct top-1 predictions in a batch.
pub(crate) fn correct(logits: &Tensor, labels: &Tensor) -> i64 {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .sum(Kind::Int64)
        .int64_value(&[])
}

/// Loss (under `objective`) and top-1 accuracy of `model` over every batch of `loader`.
pub fn evaluate(
    model: &Model,
    loader: &BatchLoader,
    objective: &Objective,
    split: Split,
) -> Evaluation {
    let start = Instant::now();
    let (mut loss, mut hits, mut n) = (RunningMean::default(), 0i64, 0usize);
    tch::no_grad(|| {
        for batch in loader.epoch(0) {
            let (logits, out) = objective.forward_loss(model, &batch, split, false);
            let b = batch.labels.size()[0] as usize;
            loss.add(out.total.double_value(&[]), b);
            hits += correct(&logits, &batch.labels);
            n += b;
        }
    });
    Evaluation {
        loss: loss.mean(),
        accuracy: hits as f64 / n.max(1) as f64,
        images: n,
        images_per_s: n as f64 / start.elapsed().as_secs_f64(),
    }
}

/// The logits `[n, classes]` (f32) of every image of `loader`'s dataset, row `i` for image
/// `i` whatever order the loader visits them in.
pub fn predict_logits(model: &Model, loader: &BatchLoader) -> Tensor {
    kd_core::LogitCache::build(model, loader, kd_core::CacheDtype::F32)
        .logits()
        .shallow_clone()
}

//! Evaluation passes: loss and accuracy over a whole split, and the logits of every image
//! (used to cache a teacher's predictions). Both run in inference mode under `no_grad`.

use std::time::Instant;

use kd_data::BatchLoader;
use kd_models::Model;
use tch::Tensor;

use crate::metrics::DeviceSums;
use crate::objective::{Objective, Split};

/// Result of evaluating a model on one split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    pub images_per_s: f64,
}

/// Loss (under `objective`) and top-1 accuracy of `model` over every batch of `loader`.
pub fn evaluate(
    model: &Model,
    loader: &BatchLoader,
    objective: &Objective,
    split: Split,
) -> Evaluation {
    let start = Instant::now();
    let sums = tch::no_grad(|| {
        loader.with_epoch(0, |batches| {
            let mut sums = DeviceSums::default();
            for batch in batches {
                let (logits, out) = objective.forward_loss(model, &batch, split, false);
                sums.add(&logits, &batch.labels, &out);
            }
            sums.read()
        })
    });
    Evaluation {
        loss: sums.loss,
        accuracy: sums.hits as f64 / sums.images.max(1) as f64,
        images: sums.images,
        images_per_s: sums.images as f64 / start.elapsed().as_secs_f64(),
    }
}

/// The logits `[n, classes]` (f32) of every image of `loader`'s dataset, row `i` for image
/// `i` whatever order the loader visits them in.
pub fn predict_logits(model: &Model, loader: &BatchLoader) -> Tensor {
    kd_core::LogitCache::build(model, loader, kd_core::CacheDtype::F32)
        .logits()
        .shallow_clone()
}

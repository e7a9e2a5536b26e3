//! The teacher-logits phase: when the students' batches are not augmented, the frozen
//! teacher's logits are the same every epoch, so they are computed once per image of the
//! students' training and validation sets (each rank computing its share under data
//! parallelism: [`kd_train::teacher_logit_cache`] either way); otherwise the teacher runs live on every batch and nothing is cached.

use std::time::Instant;

use anyhow::Result;
use kd_core::LogitCache;
use kd_data::{batch_label, ImageDataset};
use kd_models::Model;
use tch::Device;

use super::context::RunContext;
use crate::seeds::{self, Stream};

/// The cached logits of the students' training and validation images.
pub(crate) type Caches = (LogitCache, LogitCache);

/// Caches the teacher's logits if the run's loss and augmentation call for it.
pub(super) fn teacher_logits(ctx: &RunContext, teacher: &Model) -> Result<Option<Caches>> {
    let (cfg, p) = (ctx.cfg, ctx.plan);
    let cache = &cfg.teacher.cache;
    if !cfg.caches_teacher_logits() {
        tracing::info!("teacher runs live on every student batch (no logit cache)");
        return Ok(None);
    }
    seeds::enter(Stream::TeacherLogits, cfg.seed);
    let started = Instant::now();
    let (tf, device) = (&cfg.data.transform, ctx.device());
    let batches = (tf, super::EVAL_BATCH, device);
    let parallel = ctx.ranks.parallel;
    let build = |d: &ImageDataset| -> Result<LogitCache> {
        Ok(kd_train::teacher_logit_cache(
            teacher,
            d,
            batches,
            cache.dtype,
            parallel,
        )?)
    };
    let (train, val) = ctx.guard("caching the teacher's logits", || {
        Ok((build(&p.distill_train)?, build(&p.data.val)?))
    })?;
    // Over the labelled training images (an unlabeled one's label, -1, matches no class).
    let labels = labels(&p.distill_train, train.logits().device());
    let cached_accuracy = train
        .logits()
        .argmax(-1, false)
        .eq_tensor(&labels)
        .sum(tch::Kind::Float)
        .double_value(&[])
        / p.distill_train.labelled_len().max(1) as f64;
    tracing::info!(
        "teacher logits cached ({:?}) for {} training and {} validation images in {:.1}s (teacher accuracy on the labelled training images {:.2}%)",
        cache.dtype,
        p.distill_train.len(),
        p.data.val.len(),
        started.elapsed().as_secs_f64(),
        100.0 * cached_accuracy
    );
    Ok(Some((train, val)))
}

/// The labels of `data` as an i64 tensor on `device`.
fn labels(data: &ImageDataset, device: Device) -> tch::Tensor {
    let k = data.classes();
    let labels: Vec<i64> = data.labels().iter().map(|&l| batch_label(l, k)).collect();
    tch::Tensor::from_slice(&labels).to_device(device)
}

//! The teacher's card in a run's report ([`crate::teacher_card`]): its test logits (one
//! float32 pass over the test set, as the logit cache computes them), the distillation
//! loss's temperature, an ensemble's members' test logits and the teacher's files.

use anyhow::Result;
use kd_core::CacheDtype;
use kd_models::Model;
use tch::Tensor;

use super::context::RunContext;
use crate::teacher_card::{FileDigest, TeacherCard};

/// `model`'s float32 logits of the test images, `[n, classes]`, on the CPU.
pub(super) fn test_logits(ctx: &RunContext, model: &Model) -> Result<Tensor> {
    let plan = ctx.plan;
    let batches = (&ctx.cfg.data.transform, super::EVAL_BATCH, plan.device);
    let cache =
        kd_train::teacher_logit_cache(model, &plan.data.test, batches, CacheDtype::F32, None)?;
    Ok(cache.logits().to_device(tch::Device::Cpu))
}

/// The test labels, `[n]`.
pub(super) fn test_labels(ctx: &RunContext) -> Tensor {
    let labels: Vec<i64> = ctx
        .plan
        .data
        .test
        .labels()
        .iter()
        .map(|&l| i64::from(l))
        .collect();
    Tensor::from_slice(&labels)
}

/// Each file with its SHA-256.
pub(super) fn digests(files: &[std::path::PathBuf]) -> Result<Vec<FileDigest>> {
    files
        .iter()
        .map(|f| {
            Ok(FileDigest {
                file: f.display().to_string(),
                sha256: kd_models::torchscript::file_digest(f)?,
            })
        })
        .collect()
}

/// The card of a teacher with test `logits`, its ensemble members' test logits and files.
pub(super) fn card(
    ctx: &RunContext,
    logits: &Tensor,
    members: &[Tensor],
    files: Vec<FileDigest>,
) -> TeacherCard {
    let temperature = ctx.cfg.distill.loss.temperature().unwrap_or(1.0);
    let card = TeacherCard::new((logits, &test_labels(ctx)), temperature, members, files);
    tracing::info!(
        "teacher card: test accuracy {:.2}%, ECE {:.4}, at T = {temperature} {:.4}{}",
        100.0 * card.test_accuracy,
        card.ece,
        card.ece_at_temperature,
        card.member_agreement.map_or(String::new(), |a| format!(
            ", members agree on {:.2}%",
            100.0 * a
        ))
    );
    card
}

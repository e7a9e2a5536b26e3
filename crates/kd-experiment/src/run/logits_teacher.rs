//! The teacher phase of a run taught by a logits file (`teacher.logits`, read and checked
//! against the run's images by the plan): no teacher runs. The file's training and
//! validation logits become the students' logit caches, as the teacher-logits phase would
//! have cached them; its test logits give the teacher's row of the report (accuracy and
//! loss; no size, latency or training of its own).

use anyhow::Result;
use kd_core::LogitCache;

use super::cache::Caches;
use super::context::{cross_entropy, RunContext};
use crate::logits_file::TeacherLogits;
use crate::report::ModelReport;

/// The teacher's report and the students' logit caches from `file`.
pub(super) fn logits_teacher(
    ctx: &RunContext,
    file: &TeacherLogits,
) -> Result<(ModelReport, Caches)> {
    let (cfg, plan) = (ctx.cfg, ctx.plan);
    let path = cfg.teacher.logits.clone().unwrap_or_default();
    let files = super::card::digests(std::slice::from_ref(&path))?;
    let digest = files[0].sha256.clone();
    let (test_accuracy, test_loss) = file.test_score(&plan.data.test);
    tracing::info!(
        "teacher: logits from {} (made by {}; {} training, {} validation images; test accuracy {:.2}%)",
        path.display(),
        file.teacher,
        plan.distill_train.len(),
        plan.data.val.len(),
        100.0 * test_accuracy
    );
    let caches = caches_of(ctx, file);
    let test = file.logits["test"].to_kind(tch::Kind::Float);
    let report = ModelReport {
        role: "teacher".into(),
        architecture: "logits file".into(),
        pretrained: Some(format!(
            "logits {} (sha256 {digest}), made by {}",
            path.display(),
            file.teacher
        )),
        objective: cross_entropy(),
        test_accuracy,
        test_loss,
        test_in_run_precision: None,
        parameters: 0,
        file_bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
        train_seconds: 0.0,
        epochs_run: 0,
        stopped_epoch: None,
        train_images_per_s: 0.0,
        eval_images_per_s: 0.0,
        weights: path.display().to_string(),
        labelled_images: 0,
        unlabeled_images: 0,
        latency: None,
        members: Vec::new(),
        card: Some(super::card::card(ctx, &test, &[], files)),
    };
    Ok((report, caches))
}

/// The students' logit caches (training and validation images) from `file`, in the run's
/// cache dtype on its device.
pub(super) fn caches_of(ctx: &RunContext, file: &TeacherLogits) -> Caches {
    let (dtype, device) = (ctx.cfg.teacher.cache.dtype, ctx.device());
    let cache = |split: &str| LogitCache::placed(file.logits[split].shallow_clone(), dtype, device);
    (cache("train"), cache("validation"))
}

//! The students phase: the same student architecture trained twice from the same initial
//! weights on the same batches — once distilled from the teacher through kd-core's
//! [`Distiller`] (cached or live logits, or a feature loss on hinted layers), once from the
//! labels alone as the baseline — each saved and tested. With SimKD the distilled student
//! is another architecture: the student's layers up to the hinted one, a projector and the
//! teacher's head ([`super::simkd_student`]).

use anyhow::{Context, Result};
use kd_core::Distiller;
use kd_data::{BatchLoader, ImageDataset};
use kd_models::Model;
use kd_train::{FitOutcome, Objective};

use super::cache::Caches;
use super::context::{cross_entropy, Built, Finished, RunContext};
use super::hint::feature_loss;
use super::simkd_student::{adopt_head, distilled_model};
use crate::seeds::{self, Data, Stream};

/// The two students' results.
pub(super) struct Students {
    pub distilled: Finished,
    pub scratch: Finished,
}

/// Runs the students phase (`teacher`: `None` when a logits file teaches); the teacher
/// and its logits are dropped once the distilled student no longer needs them.
pub(super) fn students(
    ctx: &mut RunContext,
    teacher: Option<Model>,
    caches: Option<Caches>,
) -> Result<Students> {
    let p = ctx.plan;
    let model = &ctx.cfg.student.model;
    let (mut distilled, outcome, described) =
        fit_distilled(ctx, teacher.as_ref(), caches.as_ref())?;
    let mut distilled_result = ctx.finish(
        "distilled",
        &mut distilled,
        Built::Kd(&distilled_model(ctx.cfg)),
        None,
        described,
        Some(&outcome),
    )?;
    distilled_result.0.trained_on(&p.distill_train);
    drop((distilled, caches, teacher));

    let (mut scratch, outcome) = fit_scratch(ctx)?;
    let mut scratch_result = ctx.finish(
        "scratch",
        &mut scratch,
        Built::Kd(model),
        None,
        cross_entropy(),
        Some(&outcome),
    )?;
    scratch_result.0.trained_on(&p.student_train);
    Ok(Students {
        distilled: distilled_result,
        scratch: scratch_result,
    })
}

/// A student's training batches of `images`, shuffled by the run's student stream.
pub(super) fn student_loader<'a>(ctx: &RunContext, images: &'a ImageDataset) -> BatchLoader<'a> {
    let (cfg, device) = (ctx.cfg, ctx.device());
    let s = &cfg.student.train;
    BatchLoader::new(images, s.batch_size, cfg.data.transform.clone(), device)
        .shuffled(seeds::data(Data::StudentBatches, cfg.seed))
        .augmented(s.augment.clone())
}

/// Builds the distilled student (a SimKD student for that loss) and fits it from the
/// teacher — its cached logits, the live teacher, or a feature loss; returns it with its fit and the description of its objective.
/// `teacher` is `None` where the logits come from a file: then they are cached.
pub(super) fn fit_distilled(
    ctx: &mut RunContext,
    teacher: Option<&Model>,
    caches: Option<&Caches>,
) -> Result<(Model, FitOutcome, serde_json::Value)> {
    let (cfg, p) = (ctx.cfg, ctx.plan);
    // The distilled student also sees the unlabeled images, if any; the scratch one cannot.
    let train = student_loader(ctx, &p.distill_train);
    let val = ctx.validation_loader();
    seeds::enter(Stream::Student, cfg.seed);
    let model = &distilled_model(cfg);
    let build = || ctx.build(model);
    let distilled = ctx.guard("building the distilled student", build)?;
    adopt_head(&distilled, teacher)?;
    let live = || {
        teacher.context("the distilled student needs the teacher live, and teacher.logits gives only its logits")
    };
    let hint = match &cfg.distill.loss {
        feature if feature.is_feature() => {
            let teacher = live()?;
            let [c, h, _] = p.shape;
            let images = p.distill_train.len();
            Some(feature_loss(
                feature,
                teacher,
                &distilled,
                [c, h, h],
                images,
            )?)
        }
        _ => None,
    };
    let distiller = match (&p.logit_loss, &hint, caches) {
        (Some(loss), _, Some((train, val))) => Distiller::cached(train, val, loss.as_ref()),
        (Some(loss), _, None) => Distiller::live(live()?, loss.as_ref()),
        (None, Some(hint), _) => Distiller::features(live()?, hint.as_ref()),
        (None, None, _) => unreachable!("a loss is either a logit loss or a feature loss"),
    }
    .with_mixup(cfg.distill.mixup, "distill.mixup")?;
    let described = described_objective(cfg, caches.is_some())?;
    let objective = Objective::Distill(distiller);
    let s = &cfg.student.train;
    let outcome = ctx.fit(
        "distilled",
        &distilled,
        model,
        (&train, &val),
        &objective,
        s,
    )?;
    Ok((distilled, outcome, described))
}

/// The distilled student's objective as its report describes it: the `[distill]` section
/// and where the teacher's logits came from.
pub(super) fn described_objective(
    cfg: &crate::config::RunConfig,
    cached: bool,
) -> Result<serde_json::Value> {
    let mut described = serde_json::to_value(&cfg.distill)?;
    described["teacher_logits"] = if cached {
        format!("cached, {:?}", cfg.teacher.cache.dtype)
            .to_lowercase()
            .into()
    } else {
        "live".into()
    };
    Ok(described)
}

/// Builds the scratch student (the distilled one's initial weights) and fits it on the
/// labelled images alone.
pub(super) fn fit_scratch(ctx: &mut RunContext) -> Result<(Model, FitOutcome)> {
    let (cfg, p) = (ctx.cfg, ctx.plan);
    let train = student_loader(ctx, &p.student_train);
    let val = ctx.validation_loader();
    seeds::enter(Stream::Student, cfg.seed);
    let (model, s) = (&cfg.student.model, &cfg.student.train);
    let scratch = ctx.guard("building the scratch student", || ctx.build(model))?;
    let objective = Objective::CrossEntropy;
    let outcome = ctx.fit("scratch", &scratch, model, (&train, &val), &objective, s)?;
    Ok((scratch, outcome))
}

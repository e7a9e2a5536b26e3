//! The students phase: the same student architecture trained twice from the same initial
//! weights on the same batches — once distilled from the teacher through kd-core's
//! [`Distiller`] (cached or live logits, or a FitNets hint), once from the labels alone as
//! the baseline — each saved and tested.

use anyhow::Result;
use kd_core::{Distiller, LossConfig};
use kd_data::BatchLoader;
use kd_train::Objective;

use super::cache::Caches;
use super::context::{cross_entropy, Built, Finished, RunContext};
use super::hint::fitnets_hint;
use super::teacher::Teacher;
use crate::seeds::{self, Data, Stream};

/// The two students' results.
pub(super) struct Students {
    pub distilled: Finished,
    pub scratch: Finished,
}

/// Runs the students phase; the teacher and its logits are dropped once the distilled
/// student no longer needs them.
pub(super) fn students(
    ctx: &mut RunContext,
    teacher: Teacher,
    caches: Option<Caches>,
) -> Result<Students> {
    let (cfg, p) = (ctx.cfg, ctx.plan);
    let (s, tf, device) = (&cfg.student.train, &cfg.data.transform, ctx.device());
    let loader = |images| {
        BatchLoader::new(images, s.batch_size, tf.clone(), device)
            .shuffled(seeds::data(Data::StudentBatches, cfg.seed))
            .augmented(s.augment.clone())
    };
    // The distilled student also sees the unlabeled images, if any; the scratch one cannot.
    let (distill_train, train) = (loader(&p.distill_train), loader(&p.student_train));
    let val = BatchLoader::new(&p.data.val, super::EVAL_BATCH, tf.clone(), device);

    seeds::enter(Stream::Student, cfg.seed);
    let build = || ctx.build(&cfg.student.model);
    let mut distilled = ctx.guard("building the distilled student", build)?;
    let hint = match &cfg.distill.loss {
        LossConfig::Fitnets(f) => {
            let [c, h, _] = p.shape;
            Some(fitnets_hint(f, &teacher.model, &distilled, [c, h, h])?)
        }
        _ => None,
    };
    let distiller = match (&p.logit_loss, &hint, &caches) {
        (Some(loss), _, Some((train, val))) => Distiller::cached(train, val, loss.as_ref()),
        (Some(loss), _, None) => Distiller::live(&teacher.model, loss.as_ref()),
        (None, Some(hint), _) => Distiller::fitnets(&teacher.model, hint),
        (None, None, _) => unreachable!("a loss is either a logit loss or fitnets"),
    }
    .with_mixup(cfg.distill.mixup, "distill.mixup")?;
    let mut described = serde_json::to_value(&cfg.distill)?;
    described["teacher_logits"] = match &caches {
        Some(_) => format!("cached, {:?}", cfg.teacher.cache.dtype)
            .to_lowercase()
            .into(),
        None => "live".into(),
    };
    let objective = Objective::Distill(distiller);
    let model = &cfg.student.model;
    let loaders = (&distill_train, &val);
    let outcome = ctx.fit("distilled", &distilled, model, loaders, &objective, s)?;
    let mut distilled_result = ctx.finish(
        "distilled",
        &mut distilled,
        Built::Kd(model),
        None,
        described,
        Some(&outcome),
    )?;
    distilled_result.0.trained_on(&p.distill_train);
    drop((distilled, hint, caches, teacher, distill_train));

    seeds::enter(Stream::Student, cfg.seed);
    let mut scratch = ctx.guard("building the scratch student", || ctx.build(model))?;
    let objective = Objective::CrossEntropy;
    let outcome = ctx.fit("scratch", &scratch, model, (&train, &val), &objective, s)?;
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

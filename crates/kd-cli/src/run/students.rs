//! The students phase: the same student architecture trained twice from the same initial
//! weights on the same batches — once distilled from the teacher through kd-core's
//! [`Distiller`] (cached or live logits, or a FitNets hint), once from the labels alone as
//! the baseline — each saved and tested.

use anyhow::{bail, Result};
use kd_core::{Distiller, FitNetsConfig, FitNetsHint, LossConfig};
use kd_data::BatchLoader;
use kd_models::Model;
use kd_train::Objective;

use super::cache::Caches;
use super::context::{cross_entropy, Built, Finished, RunContext};
use super::seeds::{self, Stream};
use super::teacher::Teacher;

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
    let (cfg, p) = (ctx.cfg, ctx.prepared);
    let (s, tf, device) = (&cfg.student.train, &cfg.data.transform, ctx.device());
    let loader = |images| {
        BatchLoader::new(images, s.batch_size, tf.clone(), device)
            .shuffled(cfg.seed.wrapping_add(1))
            .augmented(s.augment.clone())
    };
    // The distilled student also sees the unlabeled images, if any; the scratch one cannot.
    let (distill_train, train) = (loader(&p.distill_train), loader(&p.student_train));
    let val = BatchLoader::new(&p.data.val, super::EVAL_BATCH, tf.clone(), device);

    crate::oom::set_activity("building the distilled student");
    seeds::enter(Stream::Student, cfg.seed);
    let mut distilled = ctx.build(&cfg.student.model)?;
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
    crate::oom::set_activity("training the distilled student");
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

    crate::oom::set_activity("building the scratch student");
    seeds::enter(Stream::Student, cfg.seed);
    let mut scratch = ctx.build(model)?;
    crate::oom::set_activity("training the scratch student");
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

/// The FitNets hint between the configured layers, its regressor in the student's
/// variable store (under `aux.`, so it trains with the student but is not saved with it).
pub(super) fn fitnets_hint(
    config: &FitNetsConfig,
    teacher: &Model,
    student: &Model,
    [c, h, w]: [usize; 3],
) -> Result<FitNetsHint> {
    let probe = tch::Tensor::zeros(
        [1, c as i64, h as i64, w as i64],
        (tch::Kind::Float, student.var_store().device()),
    );
    let channels = |model: &Model, key: &str, layer: &str| -> Result<i64> {
        let Some(feature) = tch::no_grad(|| model.forward_feature(&probe, false, layer)) else {
            let names: Vec<&str> = model
                .layers()
                .layers()
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            bail!("distill.{key}: expected one of the model's layers {names:?}, got {layer:?}");
        };
        let size = feature.size();
        if size.len() != 4 {
            bail!(
                "distill.{key}: expected a layer with a [c, h, w] output, {layer} gives {:?}",
                &size[1..]
            );
        }
        Ok(size[1])
    };
    let cs = channels(student, "student_layer", &config.student_layer)?;
    let ct = channels(teacher, "teacher_layer", &config.teacher_layer)?;
    let path = student.var_store().root() / "aux" / "hint";
    Ok(config.build("distill", &path, cs, ct)?)
}

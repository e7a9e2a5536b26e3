//! The teacher phase: load the teacher from a checkpoint, or train it (from pretrained
//! feature weights when configured) on the training split; then freeze, save and test it.

use anyhow::Result;
use kd_data::BatchLoader;
use kd_models::{Model, ModelConfig};
use kd_train::Objective;

use super::context::{cross_entropy, Built, RunContext};
use super::{card, outside_report};
use crate::outside_teacher::OutsideTeacher;
use crate::report::ModelReport;
use crate::seeds::{self, Data, Stream};

/// The frozen teacher and its report.
pub(super) struct Teacher {
    pub model: Model,
    pub report: ModelReport,
}

/// Runs the teacher phase; `outside` is the teacher from outside kd the plan loaded, if
/// any.
pub(super) fn teacher(ctx: &mut RunContext, outside: Option<OutsideTeacher>) -> Result<Teacher> {
    let cfg = ctx.cfg;
    if let Some(teacher) = outside {
        return outside_teacher(ctx, teacher);
    }
    seeds::enter(Stream::Teacher, cfg.seed);
    let model_cfg = match &cfg.teacher.checkpoint {
        Some(_) => cfg.teacher.model.without_pretrained(),
        None => cfg.teacher.model.clone(),
    };
    let mut teacher = ctx.guard("building the teacher", || ctx.build(&model_cfg))?;
    let origin = origin(ctx, &teacher);
    let outcome = match &cfg.teacher.checkpoint {
        Some(path) => {
            teacher.load(path)?;
            tracing::info!("teacher loaded from {}", path.display());
            None
        }
        None => {
            let (t, tf, device) = (&cfg.teacher.train, &cfg.data.transform, ctx.device());
            let data = &ctx.plan.data;
            let train = BatchLoader::new(&data.train, t.batch_size, tf.clone(), device)
                .shuffled(seeds::data(Data::TeacherBatches, cfg.seed))
                .augmented(t.augment.clone());
            let val = ctx.validation_loader();
            let loaders = (&train, &val);
            let objective = Objective::CrossEntropy;
            Some(ctx.fit("teacher", &teacher, &model_cfg, loaders, &objective, t)?)
        }
    };
    teacher.freeze();
    let (mut report, _) = ctx.finish(
        "teacher",
        &mut teacher,
        Built::Kd(&model_cfg),
        origin,
        cross_entropy(),
        outcome.as_ref(),
    )?;
    if outcome.is_some() {
        report.trained_on(&ctx.plan.data.train);
    }
    let file = match &cfg.teacher.checkpoint {
        Some(path) => path.clone(),
        None => ctx.out.join("teacher.safetensors"),
    };
    let files = card::digests(
        &[file]
            .into_iter()
            .filter(|f| f.is_file())
            .collect::<Vec<_>>(),
    )?;
    report.card = Some(card::card(
        ctx,
        &card::test_logits(ctx, &teacher)?,
        &[],
        files,
    ));
    Ok(Teacher {
        model: teacher,
        report,
    })
}

/// A teacher from outside kd (loaded from its files and checked on the run's input shape
/// and classes by the plan): never trained, tested, and named in the report by its files
/// and their SHA-256 (an ensemble's members each tested alone too).
fn outside_teacher(ctx: &mut RunContext, teacher: OutsideTeacher) -> Result<Teacher> {
    let parameters = teacher.parameters();
    let files = teacher.files().to_vec();
    let origin = outside_report::origin(ctx, &teacher)?;
    let (members, member_logits) = outside_report::member_scores(ctx, &teacher)?;
    tracing::info!("teacher: {origin}, {parameters} parameters");
    let kind = teacher.kind();
    let mut model = teacher.into_model(ctx.device());
    let built = Built::Outside {
        kind,
        files: &files,
        parameters,
    };
    let (mut report, _) = ctx.finish(
        "teacher",
        &mut model,
        built,
        Some(origin),
        cross_entropy(),
        None,
    )?;
    report.members = members;
    let paths: Vec<_> = files.iter().map(|(p, _)| p.clone()).collect();
    let logits = card::test_logits(ctx, &model)?;
    report.card = Some(card::card(
        ctx,
        &logits,
        &member_logits,
        card::digests(&paths)?,
    ));
    Ok(Teacher { model, report })
}

/// Where the teacher's starting weights come from, for the report (`None`: random).
fn origin(ctx: &RunContext, teacher: &Model) -> Option<String> {
    let cfg = ctx.cfg;
    match (&cfg.teacher.checkpoint, teacher.pretrained()) {
        (Some(ckpt), _) => Some(format!("checkpoint {}", ckpt.display())),
        (None, Some(loaded)) => Some(format!(
            "{} tensors ({} parameters) from {}",
            loaded.tensors,
            loaded.parameters,
            loaded.path.display()
        )),
        (None, None) => {
            let arch = cfg.teacher.model.describe();
            if let ModelConfig::Vgg(_) = cfg.teacher.model {
                tracing::warn!(
                    "teacher {arch}: no pretrained weights or checkpoint configured; starting from random initialization"
                );
            } else {
                tracing::info!("teacher {arch} starts from random initialization");
            }
            None
        }
    }
}

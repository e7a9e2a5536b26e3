//! A tune rung's distilled students of one seed trained as one fused population
//! ([`kd_train::fit_population`]; HFTA, Wang et al., MLSys 2021): each member is the
//! student its own plan's `run` would fit — its initial weights (the seed's), its loss and
//! settings, its checkpoints in its own run directory — and all read the same batches, which
//! is what plans with equal [`Plan::fusion_key`]s guarantee.

use anyhow::Result;
use kd_core::Distiller;
use kd_models::population::Layout;
use kd_models::{Model, ModelConfig};
use kd_train::{fit_population, Checkpoints, Member, NoProgress, Objective, PopulationHooks};

use super::cache::Caches;
use super::context::RunContext;
use super::piecewise::Fitted;
use super::plan::Plan;
use super::students::{described_objective, student_loader};
use super::Ranks;
use crate::config::{PrecisionChoice, RunConfig};
use crate::seeds::{self, Stream};

/// What the distilled students of configs (of one tune, at one seed) must share to train as
/// one population — the student's shape, its images (how many labelled, which unlabeled)
/// and batches (size, augmentation, transform, shuffling seed), its epochs and memory
/// format — as a string equal for such configs; `None` where the student cannot join one:
/// not of the student family, a FitNets hint (each student's own feature), mixup (its own
/// mixing), float16 (a loss scaler of its own), or CUDA graphs required (a population steps
/// eagerly). Computed from the config alone, before any plan.
pub(crate) fn fusion_key(cfg: &RunConfig) -> Option<String> {
    let ModelConfig::Student(student) = &cfg.student.model else {
        return None;
    };
    let unfusable = cfg.distill.loss.is_feature()
        || cfg.distill.mixup > 0.0
        || cfg.precision == PrecisionChoice::F16
        || cfg.student.train.cuda_graphs == Some(true);
    if unfusable {
        return None;
    }
    let (st, s) = (&cfg.student, &cfg.student.train);
    let shared = (
        student,
        (st.train_images, &st.unlabeled, st.unlabeled_images),
        (s.batch_size, &s.augment, s.epochs),
        (&cfg.data.transform, cfg.seed, cfg.channels_last),
    );
    serde_json::to_string(&shared).ok()
}

/// Fits the distilled students of `plans` (plans of one seed with equal fusion keys, `caches`
/// their teacher's logits, or `None` for the live `teacher`) as one population, pausing after
/// `pause_after` epochs, its members computing in `layout`: one result per plan, in order.
/// The outer error is the population's (its members could not be built or fused); a
/// member's own failure is its result.
pub(crate) fn fit_fused(
    plans: &[Plan],
    teacher: Option<&Model>,
    caches: Option<&Caches>,
    pause_after: Option<usize>,
    layout: Layout,
) -> Result<Vec<Result<Fitted>>> {
    if caches.is_none() && teacher.is_none() {
        anyhow::bail!(
            "fused students: the teacher must run live, and teacher.logits gives only its logits"
        );
    }
    let mut observers: Vec<NoProgress> = plans.iter().map(|_| NoProgress).collect();
    let contexts: Vec<RunContext> = plans
        .iter()
        .zip(&mut observers)
        .map(|(p, o)| RunContext::new(p, o, Ranks { parallel: None }, pause_after))
        .collect();
    let models = contexts
        .iter()
        .map(|ctx| {
            seeds::enter(Stream::Student, ctx.cfg.seed);
            ctx.build(&ctx.cfg.student.model)
        })
        .collect::<Result<Vec<Model>>>()?;
    let checkpoints: Vec<Checkpoints> = contexts
        .iter()
        .map(|ctx| ctx.checkpoints("distilled", &ctx.cfg.student.model))
        .collect();
    let members = members(plans, &models, &checkpoints, teacher, caches);
    let ModelConfig::Student(student) = &plans[0].cfg.student.model else {
        anyhow::bail!("fused students: the student family only");
    };
    let first = &contexts[0];
    let train = student_loader(first, &plans[0].distill_train);
    let val = first.validation_loader();
    let hooks = PopulationHooks {
        progress: None,
        pause_after,
        layout,
    };
    let dir = first.out.join("checkpoints").display().to_string();
    let activity = format!("training {} students as one population", plans.len());
    let outcomes = crate::oom::guard(&activity, Some(&dir), || {
        Ok(fit_population(student, &members, &train, &val, hooks)?)
    })?;
    drop(members);
    let fitted = plans
        .iter()
        .zip(models)
        .zip(outcomes)
        .map(|((p, model), outcome)| {
            Ok(Fitted {
                model,
                outcome: outcome?,
                objective: described_objective(&p.cfg, caches.is_some())?,
            })
        })
        .collect();
    Ok(fitted)
}

/// Each plan's distilled student as a member: its model, its loss from the teacher's
/// cached logits (or the live `teacher`), its settings and checkpoints.
fn members<'a>(
    plans: &'a [Plan],
    models: &'a [Model],
    checkpoints: &'a [Checkpoints],
    teacher: Option<&'a Model>,
    caches: Option<&'a Caches>,
) -> Vec<Member<'a>> {
    plans
        .iter()
        .zip(models)
        .zip(checkpoints)
        .map(|((p, model), checkpoints)| {
            let loss = p
                .logit_loss
                .as_deref()
                .expect("fusion keys need a logit loss");
            let distiller = match caches {
                Some((train, val)) => Distiller::cached(train, val, loss),
                None => Distiller::live(teacher.expect("a live teacher, checked"), loss),
            };
            Member {
                model,
                objective: Objective::Distill(distiller),
                config: &p.cfg.student.train,
                phase: "distilled".into(),
                checkpoints: Some(checkpoints),
            }
        })
        .collect()
}

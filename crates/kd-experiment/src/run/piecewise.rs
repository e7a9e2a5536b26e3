//! The experiment's phases one at a time, for a tune ([`crate::tune`]): a seed's teacher,
//! trained once into the seed's directory and loaded from there by every trial of the seed;
//! its logits for a trial's student images; one student's fit, paused after a rung to resume
//! from its checkpoints; a finished student's test. Each is the phase `run` runs, on a plan
//! of its own (the trial's config at the seed), so a tune's students train exactly as
//! `kd-cli run` trains them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kd_models::Model;
use kd_train::{FitOutcome, NoProgress};

use super::cache::{self, Caches};
use super::context::{cross_entropy, Built, RunContext};
use super::logits_teacher::{caches_of, logits_teacher};
use super::plan::Plan;
use super::students::{fit_distilled, fit_scratch};
use super::teacher;
use super::Ranks;
use crate::config::RunConfig;
use crate::report::ModelReport;

/// Which student a fit trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Student {
    /// From the teacher, as the config's `[distill]` says.
    Distilled,
    /// From the labelled images alone.
    Scratch,
}

impl Student {
    /// Its phase name: checkpoints in `checkpoints/<role>`, the model in `<role>.safetensors`.
    pub fn role(self) -> &'static str {
        match self {
            Self::Distilled => "distilled",
            Self::Scratch => "scratch",
        }
    }
}

/// A student fitted: the model, its fit and the description of its objective.
pub(crate) struct Fitted {
    pub model: Model,
    pub outcome: FitOutcome,
    pub objective: serde_json::Value,
}

impl Plan {
    /// The plan of `cfg`, parsed from the tune file `config_path`, writing to `out` and
    /// resuming whatever checkpoints are there.
    pub(crate) fn for_tune(
        config_path: &std::path::Path,
        cfg: RunConfig,
        out: PathBuf,
    ) -> Result<Plan> {
        let cfg = super::resolve_parsed(cfg, config_path)?;
        Plan::resolved(config_path, cfg, out, None)
    }

    /// `cfg` (parsed from this plan's file) planned beside this plan: the same data, writing
    /// to `out`, resuming whatever checkpoints are there.
    pub(crate) fn sibling(&self, cfg: RunConfig, out: PathBuf) -> Result<Plan> {
        let cfg = super::resolve_parsed(cfg, &self.config_path)?;
        Plan::resolved(&self.config_path, cfg, out, Some(&self.data))
    }

    /// The images the distilled student learns from (a key for its teacher logits).
    pub(crate) fn distill_images(&self) -> &kd_data::ImageDataset {
        &self.distill_train
    }

    /// The context of one phase of this plan, fits pausing after `pause_after`.
    fn context<'a>(
        &'a self,
        observer: &'a mut NoProgress,
        pause_after: Option<usize>,
    ) -> RunContext<'a> {
        RunContext::new(self, observer, Ranks { parallel: None }, pause_after)
    }

    /// Trains (or loads, as the config says) the teacher into the run directory, resuming
    /// its checkpoints; saves it as `teacher.safetensors` (not a teacher from outside kd,
    /// which stays where it is) and returns its report, with its test accuracy.
    pub(crate) fn train_teacher(&mut self) -> Result<ModelReport> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("{}: cannot create", self.out.display()))?;
        let outside = self.outside.take();
        let mut quiet = NoProgress;
        let mut ctx = self.context(&mut quiet, None);
        if let Some(file) = &self.logits {
            return Ok(logits_teacher(&ctx, file)?.0);
        }
        let is_outside = outside.is_some();
        let teacher = teacher::teacher(&mut ctx, outside)?;
        if is_outside {
            self.outside_model = Some(teacher.model);
        }
        Ok(teacher.report)
    }

    /// The teacher [`Plan::train_teacher`] left in the run directory, frozen (`None`: a
    /// logits file teaches).
    pub(crate) fn saved_teacher(&mut self) -> Result<Option<Model>> {
        if self.logits.is_some() {
            return Ok(None);
        }
        if let Some(model) = self.outside_model.take() {
            return Ok(Some(model));
        }
        if self.cfg.teacher.is_outside() {
            return self.outside_teacher_model().map(Some);
        }
        let config = self.cfg.teacher.model.without_pretrained();
        let mut teacher = build_for(self, &config)?;
        teacher.load(&self.out.join("teacher.safetensors"))?;
        teacher.freeze();
        Ok(Some(teacher))
    }

    /// The teacher's logits of this plan's student images, when its config caches them:
    /// from its logits file, or computed by `teacher`.
    pub(crate) fn teacher_caches(&self, teacher: Option<&Model>) -> Result<Option<Caches>> {
        let mut quiet = NoProgress;
        let ctx = self.context(&mut quiet, None);
        match (&self.logits, teacher) {
            (Some(file), _) => Ok(Some(caches_of(&ctx, file))),
            (None, Some(teacher)) => cache::teacher_logits(&ctx, teacher),
            (None, None) => anyhow::bail!("no teacher to compute the logits"),
        }
    }

    /// Fits `student` (checkpoints in the run directory, resumed), pausing after
    /// `pause_after` epochs (`None`: to the end).
    pub(crate) fn fit_student(
        &self,
        student: Student,
        teacher: Option<&Model>,
        caches: Option<&Caches>,
        pause_after: Option<usize>,
    ) -> Result<Fitted> {
        let mut quiet = NoProgress;
        let mut ctx = self.context(&mut quiet, pause_after);
        let (model, outcome, objective) = match student {
            Student::Distilled => fit_distilled(&mut ctx, teacher, caches)?,
            Student::Scratch => {
                let (model, outcome) = fit_scratch(&mut ctx)?;
                (model, outcome, cross_entropy())
            }
        };
        Ok(Fitted {
            model,
            outcome,
            objective,
        })
    }

    /// Saves a student whose fit is complete as `<role>.safetensors` and tests it: its
    /// report, with its test accuracy, size and batch-1 latency.
    pub(crate) fn test_student(&self, student: Student, mut fitted: Fitted) -> Result<ModelReport> {
        let mut quiet = NoProgress;
        let mut ctx = self.context(&mut quiet, None);
        let model = match student {
            Student::Distilled => super::simkd_student::distilled_model(&self.cfg),
            Student::Scratch => self.cfg.student.model.clone(),
        };
        let (report, _) = ctx.finish(
            student.role(),
            &mut fitted.model,
            Built::Kd(&model),
            None,
            fitted.objective,
            Some(&fitted.outcome),
        )?;
        Ok(report)
    }
}

/// A model of `config` for `plan`'s data, precision and memory format.
fn build_for(plan: &Plan, config: &kd_models::ModelConfig) -> Result<Model> {
    super::build::build_model(&plan.cfg, config, plan.shape, plan.device)
}

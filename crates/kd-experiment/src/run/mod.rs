//! `kd-cli run CONFIG`: the whole experiment of the seed notebook from one config: train (or
//! load) the teacher, distill the student from the teacher's cached logits, train the same
//! student from the same initial weights without the teacher as the baseline, evaluate all
//! three on the test set, save them, and write the run directory:
//!
//! ```text
//! <out>/config.toml        the resolved config (defaults filled in, CLI overrides applied)
//! <out>/metrics.jsonl      one line per epoch: {"phase": .., "epoch": .., "loss": .., ...}
//! <out>/report.json        the comparison (see `report.rs`)
//! <out>/teacher.safetensors, distilled.safetensors, scratch.safetensors
//! <out>/checkpoints/<phase>/last.safetensors, best.safetensors   (see kd_train::checkpoint)
//! ```
//!
//! `--resume <out>` continues an interrupted run: finished phases load their final weights
//! from their checkpoints, the interrupted one continues after its last completed epoch.
//!
//! A run is a [`Plan`] (`plan.rs`: every decision and check, before anything trains, with
//! `checks.rs`, `data.rs` and `unlabeled.rs`) and then a sequence of phases, each in a file
//! of its own and each drawing from its own seeded generator stream ([`crate::seeds`]):
//! `teacher.rs`, `cache.rs` (the teacher's logits), `students.rs` (distilled and scratch)
//! and `outputs.rs` (the report and files). `context.rs` holds what they share, and the one
//! place a fit is wired to checkpoints, progress and data parallelism; `directory.rs` the
//! run directory; [`Observer`] what a caller sees as the run goes.

mod build;
mod cache;
mod card;
mod checks;
mod context;
mod data;
mod directory;
mod fused;
mod hint;
mod logits_teacher;
mod observer;
mod outputs;
mod outside_report;
mod piecewise;
mod plan;
mod simkd_student;
mod students;
mod teacher;
mod test_eval;
mod unlabeled;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kd_train::distributed::{Backend, DataParallel, ProcessGroup, Rendezvous};

use crate::config::RunConfig;
use crate::logits_file::TeacherLogits;
use crate::outside_teacher::OutsideTeacher;
use crate::report::Report;
pub(crate) use cache::Caches;
use context::RunContext;
pub use directory::run_dir;
pub(crate) use fused::{fit_fused, fusion_key};
pub use observer::Observer;
pub(crate) use piecewise::{Fitted, Student};
pub use plan::{Plan, TeacherSource};

/// Overrides given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// `--out`: the run directory, instead of `runs/<name>/seed-<seed>`.
    pub out: Option<PathBuf>,
    /// `--seed`: overrides the config's `seed`.
    pub seed: Option<u64>,
    /// `--threads`: overrides the config's `threads` (0: libtorch's default).
    pub threads: Option<usize>,
    /// `--set KEY=VALUE` overrides, applied after the file and before `seed`/`threads`.
    pub sets: Vec<crate::config::Override>,
    /// `--resume DIR`: continue the run in DIR.
    pub resume: Option<PathBuf>,
    /// `--device`: overrides the config's device.
    pub device: Option<crate::config::DeviceChoice>,
}

/// The config of `config_path` with the command line's overrides applied and checked, and
/// the warnings its resolution gives ([`RunConfig::load_with_warnings`]).
pub fn resolve_config(
    config_path: &Path,
    overrides: &RunOverrides,
) -> Result<(RunConfig, Vec<String>)> {
    let (mut cfg, warnings) = RunConfig::load_with_warnings(config_path, &overrides.sets)?;
    if let Some(seed) = overrides.seed {
        cfg.seed = seed;
    }
    if let Some(threads) = overrides.threads {
        cfg.threads = threads;
    }
    if let Some(device) = overrides.device {
        cfg.device = device;
    }
    let (precision, why) = cfg.resolve_precision(cfg.device.resolve("device")?)?;
    tracing::info!("precision: {} ({why})", precision.name());
    Ok((resolve_parsed(cfg, config_path)?, warnings))
}

/// A parsed config (of `config_path`) with its `auto` precision resolved, checked.
pub(crate) fn resolve_parsed(mut cfg: RunConfig, config_path: &Path) -> Result<RunConfig> {
    cfg.resolve_precision(cfg.device.resolve("device")?)?;
    cfg.validate()
        .with_context(|| format!("{}: invalid config", config_path.display()))?;
    Ok(cfg)
}

/// Runs the experiment described by `config_path`, telling `observer` how it goes; returns
/// the report. [`Plan::new`] then [`Plan::run`].
pub fn run(
    config_path: &Path,
    overrides: &RunOverrides,
    observer: &mut dyn Observer,
) -> Result<Report> {
    Plan::new(config_path, overrides)?.run(observer)
}

/// Images per batch of every pass without gradients (validation, test, teacher logits):
/// large batches keep the cores busy where small training batches would not, and a model in
/// evaluation mode computes the same logits (up to float rounding) at any batch size.
pub(crate) const EVAL_BATCH: usize = 1000;

/// This process's place among the ranks of a data-parallel run.
#[derive(Debug, Clone, Copy)]
struct Ranks<'a> {
    parallel: Option<DataParallel<'a>>,
}

impl Ranks<'_> {
    /// Whether this process writes the run directory (rank 0, or the only process).
    fn writer(&self) -> bool {
        self.parallel.is_none_or(|p| p.rank() == 0)
    }
}

// `Plan::run` is here, beside the phases it strings together, so that `plan.rs` imports
// none of them (and none of them, through the context, imports it back).
impl Plan {
    /// Runs the plan: joins the other ranks under a launcher, creates the run directory and
    /// runs the phases, telling `observer` how they go (on the rank that writes the run
    /// directory); returns the report. Running out of memory is an error naming the
    /// checkpoints, which a `--resume` continues from.
    pub fn run(mut self, observer: &mut dyn Observer) -> Result<Report> {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        let group = match &self.launch {
            // NCCL for GPU ranks, Gloo for CPU ones.
            Some(env) => Some(ProcessGroup::join(&Rendezvous {
                backend: Backend::for_device(self.device),
                ..env.rendezvous.clone()
            })?),
            None => None,
        };
        let ranks = Ranks {
            parallel: group.as_ref().map(|group| DataParallel { group }),
        };
        let checkpoints_dir = self.out.join("checkpoints").display().to_string();
        let outside = self.outside.take();
        let logits = self.logits.take();
        crate::oom::guard("running the experiment", Some(&checkpoints_dir), || {
            self.run_phases(ranks, (outside, logits), observer)
        })
    }

    /// The run directory, then the phases in order.
    fn run_phases(
        &self,
        ranks: Ranks,
        (outside, logits): (Option<OutsideTeacher>, Option<TeacherLogits>),
        observer: &mut dyn Observer,
    ) -> Result<Report> {
        // Only the rank that writes the run directory shows progress.
        let mut silent = kd_train::NoProgress;
        let observer: &mut dyn Observer = if ranks.writer() {
            observer
        } else {
            &mut silent
        };
        if ranks.writer() {
            directory::create_run_dir(&self.out, &self.resolved, self.resume, observer)?;
        }
        self.log_start(ranks);
        let mut ctx = RunContext::new(self, observer, ranks, None);
        let (teacher, teacher_report, caches) = match logits {
            Some(file) => {
                let (report, caches) = logits_teacher::logits_teacher(&ctx, &file)?;
                (None, report, Some(caches))
            }
            None => {
                let teacher = teacher::teacher(&mut ctx, outside)?;
                let caches = cache::teacher_logits(&ctx, &teacher.model)?;
                (Some(teacher.model), teacher.report, caches)
            }
        };
        let students = students::students(&mut ctx, teacher, caches)?;
        outputs::write_outputs(
            &ctx,
            &self.config_path,
            teacher_report,
            students,
            self.started,
        )
    }

    /// The run's first log lines: what it trains on, where it writes, its rank.
    fn log_start(&self, ranks: Ranks) {
        let [c, h, _] = self.shape;
        tracing::info!(
            "run {} (seed {}) on {}: {} train / {} validation / {} test images of {c}x{h}x{h}, writing to {}",
            self.cfg.name,
            self.cfg.seed,
            crate::env::device_name(self.device),
            self.data.train.len(),
            self.data.val.len(),
            self.data.test.len(),
            self.out.display()
        );
        if let Some(p) = ranks.parallel {
            tracing::info!(
                "data parallel: rank {} of {}, global batch sizes as configured",
                p.rank(),
                p.world_size()
            );
        }
    }
}

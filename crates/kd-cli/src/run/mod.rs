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
//! A run is a sequence of phases, each in a file of its own and each drawing from its own
//! seeded generator stream (`seeds.rs`): `prepare.rs` (every check, before anything
//! trains), `teacher.rs`, `cache.rs` (the teacher's logits), `students.rs` (distilled and
//! scratch) and `outputs.rs` (the report and files). `context.rs` holds what they share, and
//! the one place a fit is wired to checkpoints, progress and data parallelism.

mod build;
mod cache;
mod context;
mod data;
mod outputs;
mod prepare;
mod seeds;
mod students;
mod teacher;
mod test_eval;
mod unlabeled;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kd_data::BatchLoader;
use kd_train::distributed::{launch_env, Backend, DataParallel, ProcessGroup, Rendezvous};

use crate::config::RunConfig;
use crate::progress::TerminalProgress;
use crate::report::Report;
use crate::run_log::RunLog;
use context::RunContext;
pub(crate) use data::load_data;
pub(crate) use unlabeled::student_sets;

/// Overrides given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    /// `--set KEY=VALUE` overrides, applied after the file and before `seed`/`threads`.
    pub sets: Vec<crate::config::Override>,
    /// `--resume DIR`: continue the run in DIR.
    pub resume: Option<PathBuf>,
    /// `--device`: overrides the config's device.
    pub device: Option<crate::config::DeviceChoice>,
    /// No progress bars.
    pub quiet: bool,
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
    cfg.validate()
        .with_context(|| format!("{}: invalid config", config_path.display()))?;
    Ok((cfg, warnings))
}

/// The run directory: `--resume`'s, `--out`, or `runs/<name>/seed-<seed>`.
pub fn run_dir(cfg: &RunConfig, overrides: &RunOverrides) -> Result<PathBuf> {
    Ok(match (&overrides.resume, &overrides.out) {
        (Some(dir), Some(out)) if dir != out => bail!(
            "--resume {} with --out {}: a resumed run continues in its own directory; drop --out",
            dir.display(),
            out.display()
        ),
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => PathBuf::from("runs")
            .join(&cfg.name)
            .join(format!("seed-{}", cfg.seed)),
    })
}

/// Runs the experiment described by `config_path`; returns the report.
pub fn run(config_path: &Path, overrides: &RunOverrides) -> Result<Report> {
    let start = Instant::now();
    let (cfg, warnings) = resolve_config(config_path, overrides)?;
    crate::env::keep_freed_memory(cfg.precision());
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let out = run_dir(&cfg, overrides)?;
    // Under torchrun or `kd-cli launch`: join the other ranks first.
    let launch = launch_env(|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("distributed launch environment: {e}"))?;
    let group = match &launch {
        Some(env) => {
            // NCCL for GPU ranks (one GPU per rank on each machine), Gloo for CPU ones.
            let backend = match cfg.device.resolve("device")? {
                tch::Device::Cuda(_) => Backend::for_device(tch::Device::Cuda(env.local_rank)),
                other => Backend::for_device(other),
            };
            Some(ProcessGroup::join(&Rendezvous {
                backend,
                ..env.rendezvous.clone()
            })?)
        }
        None => None,
    };
    let ranks = Ranks {
        parallel: group.as_ref().map(|group| DataParallel { group }),
        local_rank: launch.as_ref().map_or(0, |l| l.local_rank),
    };
    let checkpoints_dir = out.join("checkpoints").display().to_string();
    crate::oom::guard(Some(&checkpoints_dir), || {
        run_in(config_path, overrides, &cfg, &out, start, ranks)
    })
}

/// Images per batch of every pass without gradients (validation, test, teacher logits):
/// large batches keep the cores busy where small training batches would not, and a model in
/// evaluation mode computes the same logits (up to float rounding) at any batch size.
pub(super) const EVAL_BATCH: usize = 1000;

/// This process's place among the ranks of a data-parallel run.
#[derive(Debug, Clone, Copy)]
struct Ranks<'a> {
    parallel: Option<DataParallel<'a>>,
    local_rank: usize,
}

impl Ranks<'_> {
    /// Whether this process writes the run directory (rank 0, or the only process).
    fn writer(&self) -> bool {
        self.parallel.is_none_or(|p| p.rank() == 0)
    }
}

/// [`run`] once the config is resolved and the run directory chosen: the phases in order.
fn run_in(
    config_path: &Path,
    overrides: &RunOverrides,
    cfg: &RunConfig,
    out: &Path,
    start: Instant,
    ranks: Ranks,
) -> Result<Report> {
    let mut prepared = prepare::prepare(config_path, overrides, cfg, out, ranks)?;
    let torchscript = prepared.torchscript.take();
    let test = &prepared.data.test;
    let mut ctx = RunContext {
        cfg,
        out,
        prepared: &prepared,
        test: BatchLoader::new(
            test,
            EVAL_BATCH,
            cfg.data.transform.clone(),
            prepared.device,
        ),
        log: RunLog::default(),
        bars: TerminalProgress::new(overrides.quiet || !ranks.writer()),
        fingerprint: crate::resume::fingerprint(&prepared.resolved),
        resume: overrides.resume.is_some(),
        ranks,
    };
    let teacher = teacher::teacher(&mut ctx, torchscript)?;
    let caches = cache::teacher_logits(&ctx, &teacher.model)?;
    let teacher_report = teacher.report.clone();
    let students = students::students(&mut ctx, teacher, caches)?;
    outputs::write_outputs(&ctx, config_path, teacher_report, students, start)
}

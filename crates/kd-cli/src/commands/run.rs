//! `kd-cli run CONFIG`: the experiment, with progress bars and the report's table.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::config::{DeviceChoice, Override};
use kd_experiment::run::{run, RunOverrides};

use crate::progress::TerminalProgress;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment's TOML config, e.g. configs/quickstart.toml.
    config: PathBuf,
    /// Run directory (default: runs/<name>/seed-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overrides the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Overrides the config's CPU thread count.
    #[arg(long)]
    threads: Option<usize>,
    /// Overrides one config key, e.g. `--set student.train.lr=3e-4` (repeatable; bare
    /// words are strings, `--set distill.loss=dkd`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<Override>,
    /// Continues the interrupted run in this directory from its last checkpoints (give
    /// the same config and overrides it was started with).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Overrides the config's device: `cpu`, `cuda`, or `auto` (CUDA when available).
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
}

impl RunArgs {
    pub fn run(self, quiet: bool) -> anyhow::Result<()> {
        let overrides = RunOverrides {
            out: self.out,
            seed: self.seed,
            threads: self.threads,
            sets: self.sets,
            resume: self.resume,
            device: self.device,
        };
        let report = run(&self.config, &overrides, &mut TerminalProgress::new(quiet))?;
        // Under a launcher every rank runs; rank 0 reports.
        if std::env::var("RANK").is_ok_and(|r| r != "0") {
            return Ok(());
        }
        print!("{}", report.table());
        Ok(())
    }
}

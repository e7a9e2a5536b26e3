//! `kd-cli check CONFIG`: what `run` would do, decided without training.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::check::check;
use kd_experiment::config::{DeviceChoice, Override};
use kd_experiment::run::RunOverrides;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The experiment's TOML config.
    config: PathBuf,
    /// Overrides one config key, as `run --set` does (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<Override>,
    /// Overrides the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory `run --out` would use.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overrides the config's device: `cpu`, `cuda`, or `auto`.
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let overrides = RunOverrides {
            out: self.out,
            seed: self.seed,
            sets: self.sets,
            device: self.device,
            ..Default::default()
        };
        print!("{}", check(&self.config, &overrides)?);
        Ok(())
    }
}

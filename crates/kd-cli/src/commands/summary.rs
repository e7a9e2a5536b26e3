//! `kd-cli summary CONFIG`: Keras-style summaries of the config's teacher and student.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::config::Override;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The experiment's TOML config.
    config: PathBuf,
    /// Overrides one config key, as `run --set` does (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<Override>,
}

impl SummaryArgs {
    pub fn run(self) -> anyhow::Result<()> {
        print!(
            "{}",
            kd_experiment::summary::summary(&self.config, &self.sets)?
        );
        Ok(())
    }
}

//! `kd-cli config default`: the default configuration, every key commented.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

/// `kd-cli config ...`.
#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the default configuration, every key commented.
    Default,
}

impl ConfigArgs {
    pub fn run(self) -> anyhow::Result<()> {
        match self.action {
            ConfigAction::Default => print!("{}", kd_experiment::config::DEFAULT_CONFIG),
        }
        Ok(())
    }
}

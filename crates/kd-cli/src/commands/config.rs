//! `kd-cli config default [--tune]`: the default configuration, every key commented (and a
//! `[tune]` section).

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
    Default {
        /// Append a `[tune]` section, making the file a tune (`kd-cli tune`).
        #[arg(long)]
        tune: bool,
    },
}

impl ConfigArgs {
    pub fn run(self) -> anyhow::Result<()> {
        match self.action {
            ConfigAction::Default { tune } => {
                print!("{}", kd_experiment::config::DEFAULT_CONFIG);
                if tune {
                    print!("\n{}", kd_experiment::tune::DEFAULT_TUNE);
                }
            }
        }
        Ok(())
    }
}

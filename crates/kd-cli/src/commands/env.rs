//! `kd-cli env`: the libtorch, device, threads and precision this binary runs with.

use clap::Args;

#[derive(Debug, Args)]
pub struct EnvArgs {}

impl EnvArgs {
    pub fn run(self) -> anyhow::Result<()> {
        print!("{}", kd_experiment::env::env_text());
        Ok(())
    }
}

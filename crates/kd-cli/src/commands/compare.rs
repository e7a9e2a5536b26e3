//! `kd-cli compare REPORT...`: runs side by side, with paired statistics over seeds.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// `report.json` files, run directories, or directories of runs (`runs/quickstart`).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
}

impl CompareArgs {
    pub fn run(self) -> anyhow::Result<()> {
        print!("{}", kd_experiment::compare::compare(&self.reports)?);
        Ok(())
    }
}

//! `kd-cli launch --nproc N CONFIG ...`: N local ranks of one data-parallel run.

use clap::Args;

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Number of processes (ranks).
    #[arg(long)]
    nproc: usize,
    /// Port of the rendezvous store on 127.0.0.1 (default: a free one).
    #[arg(long)]
    master_port: Option<u16>,
    /// The config and `run` options, e.g. `configs/quickstart.toml --out runs/dp`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    run_args: Vec<String>,
}

impl LaunchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        crate::launch::launch(self.nproc, self.master_port, &self.run_args)
    }
}

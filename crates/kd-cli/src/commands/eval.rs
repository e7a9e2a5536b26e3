//! `kd-cli eval MODEL`: a saved model's accuracy, per class and as a confusion matrix.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::eval::eval;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A `.safetensors` file from a run directory, e.g. runs/quickstart/seed-19/distilled.safetensors.
    model: PathBuf,
    /// The dataset's directory (default: where `cargo xtask fetch-data` puts it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `test` or `train`.
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    compute: super::Compute,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let device = self.compute.apply()?;
        let result = eval(
            &self.model,
            self.data,
            &self.split,
            device,
            self.compute.precision,
        )?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", result.text());
        }
        Ok(())
    }
}

//! `kd-cli eval MODEL`: a saved model's accuracy, per class and as a confusion matrix.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::eval::eval;
use kd_experiment::eval_torchscript::{eval_torchscript, is_torchscript};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A `.safetensors` file from a run directory, e.g. runs/quickstart/seed-19/distilled.safetensors,
    /// an `.onnx` file kd exported, or a TorchScript teacher (`.pt`, with --config).
    model: PathBuf,
    /// For a TorchScript `.pt` teacher: the run config that takes it as
    /// `teacher.torchscript` (its dataset, preprocessing and `[teacher.input]`).
    #[arg(long, value_name = "CONFIG")]
    config: Option<PathBuf>,
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
        let result = if is_torchscript(&self.model) {
            eval_torchscript(
                &self.model,
                self.config.as_deref(),
                self.data,
                &self.split,
                (device, self.compute.precision),
            )?
        } else if self.config.is_some() {
            anyhow::bail!(
                "--config: applies to a TorchScript teacher (.pt); {} records its own dataset",
                self.model.display()
            );
        } else {
            eval(
                &self.model,
                self.data,
                &self.split,
                device,
                self.compute.precision,
            )?
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", result.text());
        }
        Ok(())
    }
}

//! `kd-cli eval MODEL`: a saved model's accuracy, per class and as a confusion matrix.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::config::DeviceChoice;
use kd_experiment::eval::eval;
use kd_experiment::eval_precision::EvalPrecision;

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
    /// `cpu`, `cuda`, or `auto` (CUDA when available).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// `f32` (the report's test accuracy, what exported float files compute), `run`
    /// (the precision the run evaluated the model in, recorded in the file), `bf16` or
    /// `f16`.
    #[arg(long, value_enum, default_value = "f32")]
    precision: EvalPrecision,
    /// libtorch CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        super::set_threads(self.threads);
        let device = self.device.resolve("--device")?;
        let result = eval(&self.model, self.data, &self.split, device, self.precision)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", result.text());
        }
        Ok(())
    }
}

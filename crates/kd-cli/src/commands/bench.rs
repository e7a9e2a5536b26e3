//! `kd-cli bench`: training and inference steps timed on synthetic batches; with
//! `--mode latency MODEL...`, the latency of saved and exported models; with `--mode
//! population`, fused student populations against solo fits.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use kd_experiment::bench::{bench, BenchMode};
use kd_experiment::bench_population::{
    bench_population, table as population_table, PopulationBench,
};
use kd_experiment::config::DeviceChoice;
use kd_experiment::{bench_latency, env};
use kd_models::population::Layout;
use kd_models::Precision;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Modes to time, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "teacher,student,distill,distill-cached,eval"
    )]
    mode: Vec<BenchMode>,
    /// Images per step (the anchor scripts use 128).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed steps per mode.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// `cpu`, `cuda`, or `auto` (CUDA when available).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// libtorch CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// `f32`, or mixed precision `bf16` / `f16` (libtorch autocast).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Inputs and convolution kernels in channels-last (NHWC) memory format.
    #[arg(long)]
    channels_last: bool,
    /// Training steps as CUDA graphs (captured once, replayed), as `run` does on a GPU.
    #[arg(long)]
    cuda_graphs: bool,
    /// Model files for `--mode latency`: `.safetensors` from a run directory (timed in
    /// libtorch), `.onnx` from `kd-cli export` (timed in tract and onnxruntime) and a
    /// TorchScript teacher `.pt` (with --config).
    models: Vec<PathBuf>,
    /// For a TorchScript `.pt` teacher: the run config that takes it as
    /// `teacher.torchscript` (its image shape and `[teacher.input]`).
    #[arg(long, value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// For `--mode population`: the population sizes K to time (`--steps` is then the
    /// batches of each timed epoch).
    #[arg(long, value_delimiter = ',', default_value = "1,4,12,32")]
    members: Vec<usize>,
    /// For `--mode population`: timed rounds per size (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// For `--mode population`: how the fused members compute, `grouped` (fused
    /// convolutions) or `members` (each as alone, bit for bit its solo fit).
    #[arg(long, default_value = "grouped", value_parser = parse_layout)]
    layout: Layout,
}

/// `--layout`'s parser.
fn parse_layout(name: &str) -> Result<Layout, String> {
    Layout::from_name(name).ok_or_else(|| format!("expected grouped or members, got {name:?}"))
}

/// `--precision`'s parser.
fn parse_precision(name: &str) -> Result<Precision, String> {
    Precision::from_name(name).ok_or_else(|| format!("expected f32, bf16 or f16, got {name:?}"))
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        super::set_threads(self.threads);
        if self.mode.contains(&BenchMode::Latency) {
            return self.latency();
        }
        if self.mode.contains(&BenchMode::Population) {
            return self.population();
        }
        if !self.models.is_empty() {
            bail!("MODEL files are timed by --mode latency only");
        }
        let device = self.device.resolve("--device")?;
        if self.batch == 0 || self.steps == 0 {
            bail!("--batch and --steps: expected at least 1");
        }
        env::keep_freed_memory(self.precision);
        env::prepare_device(device);
        let args = kd_experiment::bench::BenchArgs {
            modes: self.mode,
            batch: self.batch,
            steps: self.steps,
            warmup: self.warmup,
            device,
            precision: self.precision,
            channels_last: self.channels_last,
            cuda_graphs: self.cuda_graphs,
        };
        for line in bench(&args)? {
            println!("{line}");
        }
        Ok(())
    }

    /// `--mode population`: fused populations against solo fits, a JSON line per size, then
    /// the table.
    fn population(self) -> anyhow::Result<()> {
        if self.mode.len() > 1 || !self.models.is_empty() {
            bail!("--mode population: time populations alone (no other mode, no MODEL files)");
        }
        let device = self.device.resolve("--device")?;
        env::keep_freed_memory(self.precision);
        env::prepare_device(device);
        let args = PopulationBench {
            members: self.members,
            batch: self.batch,
            steps: self.steps,
            rounds: self.rounds,
            device,
            precision: self.precision,
            layout: self.layout,
        };
        let rows = bench_population(&args)?;
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        print!("{}", population_table(&rows));
        Ok(())
    }

    /// `--mode latency MODEL...`: the table of the model files.
    fn latency(self) -> anyhow::Result<()> {
        if self.mode.len() > 1 {
            bail!("--mode latency: time models alone (the other modes time the seed's synthetic steps)");
        }
        let python = bench_latency::venv_python();
        let config = self.config.as_deref();
        let rows = bench_latency::bench_latency(&self.models, python.as_deref(), config)?;
        print!("{}", bench_latency::text(&rows));
        Ok(())
    }
}

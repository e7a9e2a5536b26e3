//! The subcommands, one module each: its arguments (a clap `Args` struct) and its `run`,
//! which calls kd-experiment and prints what it returns. Nothing here trains or measures.

mod bench;
mod check;
mod compare;
mod config;
mod doctor;
mod env;
mod eval;
mod export;
mod launch;
mod predict;
mod run;
mod summary;
mod teach;
mod tune;

use clap::Subcommand;

/// A kd-cli subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train (or load) a teacher, distill a student, train the same student from scratch,
    /// and compare the three on the test set.
    #[command(after_help = "Examples:
  kd-cli run configs/quickstart.toml
  kd-cli run configs/quickstart.toml --seed 3 --set distill.loss=dkd --out runs/dkd-3
  kd-cli run configs/quickstart.toml --resume runs/quickstart/seed-19   # after an interruption")]
    Run(run::RunArgs),
    /// Which distillation, which settings, and does it pay: successive halving over the
    /// configurations of the config's `[tune]` section at every seed — the teacher trained
    /// once per seed — with a leaderboard, paired gains over the scratch student with their
    /// 95 % intervals, and a Pareto plot (docs/configuration.md, "[tune]").
    #[command(after_help = "Examples:
  kd-cli tune configs/quickstart-tune.toml
  kd-cli tune configs/quickstart-tune.toml --resume               # after an interruption
  kd-cli tune configs/quickstart-tune.toml --shard 2/4 --out /shared/tune   # one of 4 machines
  kd-cli tune --report /shared/tune                                 # merge what is there")]
    Tune(tune::TuneArgs),
    /// Check a config without training: print the resolved config, the data found, both
    /// models' summaries, the device and run directory, and warnings for surprising
    /// resolutions. Exits non-zero where `run` would fail before training.
    #[command(after_help = "Examples:
  kd-cli check configs/quickstart.toml
  kd-cli check configs/quickstart.toml --set distill.loss=dkd --set student.train.epochs=5")]
    Check(check::CheckArgs),
    /// Write the config's teacher's logits of the run's images to a file, once: the
    /// teacher trains (or resumes) in the run directory `run` would use, or loads from its
    /// file. `teacher.logits = FILE` then makes a run of the same data, split and seed
    /// learn from them without running any teacher (a teacher on another machine teaches
    /// this way).
    #[command(after_help = "Examples:
  kd-cli teach configs/quickstart.toml --out quickstart-19.kdl
  kd-cli run configs/quickstart.toml --set teacher.logits=quickstart-19.kdl --out runs/from-logits")]
    Teach(teach::TeachArgs),
    /// Runs `kd-cli run` as N local processes training one model data-parallel (PyTorch's
    /// c10d with Gloo), as `torchrun --nproc-per-node N` does; docs/distributed.md.
    #[command(after_help = "Example:
  kd-cli launch --nproc 2 configs/quickstart.toml --out runs/dp")]
    Launch(launch::LaunchArgs),
    /// Accuracy, per-class accuracy and confusion matrix of a model saved by `kd-cli run`,
    /// on its dataset's test split (the model file names its dataset and preprocessing).
    #[command(after_help = "Examples:
  kd-cli eval runs/quickstart/seed-19/distilled.safetensors
  kd-cli eval runs/quickstart/seed-19/checkpoints/distilled/best.safetensors --json
  kd-cli eval runs/quickstart/seed-19/distilled.safetensors --precision run")]
    Eval(eval::EvalArgs),
    /// The top classes of images (PNG, JPEG, BMP, TGA) under a model saved by `kd-cli run`.
    /// Images that cannot be read are reported, the others predicted, and the exit status
    /// is non-zero if any failed.
    #[command(after_help = "Example:
  kd-cli predict runs/quickstart/seed-19/distilled.safetensors shoe.png shirt.jpg --top-k 2")]
    Predict(predict::PredictArgs),
    /// Export a model saved by `kd-cli run` for use without kd: `--format torchscript`
    /// writes a module Python's `torch.jit.load` runs; `--format onnx` an ONNX model
    /// (opset 17) for onnxruntime and other runtimes, float or, with `--quantize int8`,
    /// statically quantized. Both have the preprocessing built in (input: float images in
    /// [0, 1] at the dataset's native size; output: logits).
    #[command(after_help = "Examples:
  kd-cli export runs/quickstart/seed-19/distilled.safetensors --out distilled.pt
  python -c \"import torch; print(torch.jit.load('distilled.pt')(torch.rand(1, 1, 28, 28)))\"
  kd-cli export runs/quickstart/seed-19/distilled.safetensors --format onnx --out distilled.onnx
  kd-cli export runs/quickstart/seed-19/distilled.safetensors --format onnx --quantize int8 --out distilled.int8.onnx")]
    Export(export::ExportArgs),
    /// Configuration helpers.
    #[command(after_help = "Example:
  kd-cli config default > my.toml && kd-cli check my.toml")]
    Config(config::ConfigArgs),
    /// Print a Keras-style summary (layers, output shapes, parameters) of the config's
    /// teacher and student.
    #[command(after_help = "Examples:
  kd-cli summary configs/cifar10.toml
  kd-cli summary configs/quickstart.toml --set student.model.width=32")]
    Summary(summary::SummaryArgs),
    /// Time training and inference steps of the seed's models on synthetic 32x32x3 batches,
    /// as the PyTorch and Keras anchor scripts do; one JSON line per mode. `--mode latency`
    /// instead times the MODEL files named, batch 1 and 256, and prints a table.
    #[command(after_help = "Examples:
  kd-cli bench --mode student,eval --steps 10
  kd-cli bench --precision bf16 --channels-last --threads 2
  kd-cli bench --mode latency runs/quickstart/seed-1/teacher.safetensors runs/quickstart/seed-1/distilled.safetensors distilled.int8.onnx")]
    Bench(bench::BenchArgs),
    /// Compare runs (e.g. one per seed): per-run and mean test accuracies.
    #[command(after_help = "Examples:
  kd-cli compare runs/quickstart                 # every seed-* run under it
  kd-cli compare runs/quickstart/seed-1 runs/quickstart/seed-2")]
    Compare(compare::CompareArgs),
    /// Print the torch version, the device that will be used, CUDA/cuDNN availability and
    /// the thread count.
    Env(env::EnvArgs),
    /// Check that this machine runs kd correctly (in well under a minute): the seed's models
    /// on the device against the CPU, a training step, bf16 autocast, an all-reduce, a
    /// checkpoint round trip. Exits non-zero if any check fails.
    #[command(after_help = "Examples:
  kd-cli doctor
  kd-cli doctor --device cuda")]
    Doctor(doctor::DoctorArgs),
}

impl Command {
    /// The subcommand as typed (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Tune(_) => "tune",
            Self::Check(_) => "check",
            Self::Teach(_) => "teach",
            Self::Launch(_) => "launch",
            Self::Eval(_) => "eval",
            Self::Predict(_) => "predict",
            Self::Export(_) => "export",
            Self::Config(_) => "config",
            Self::Summary(_) => "summary",
            Self::Bench(_) => "bench",
            Self::Compare(_) => "compare",
            Self::Env(_) => "env",
            Self::Doctor(_) => "doctor",
        }
    }

    /// Whether the command decides its own allocator settings once it knows its precision.
    pub fn picks_its_precision(&self) -> bool {
        matches!(self, Self::Run(_) | Self::Tune(_) | Self::Bench(_))
    }

    /// Runs the command; `quiet`: no progress bars.
    pub fn run(self, quiet: bool) -> anyhow::Result<()> {
        match self {
            Self::Run(args) => args.run(quiet),
            Self::Tune(args) => args.run(),
            Self::Check(args) => args.run(),
            Self::Teach(args) => args.run(),
            Self::Launch(args) => args.run(),
            Self::Eval(args) => args.run(),
            Self::Predict(args) => args.run(),
            Self::Export(args) => args.run(),
            Self::Config(args) => args.run(),
            Self::Summary(args) => args.run(),
            Self::Bench(args) => args.run(),
            Self::Compare(args) => args.run(),
            Self::Env(args) => args.run(),
            Self::Doctor(args) => args.run(),
        }
    }
}

/// Where and how `eval` and `predict` run a saved model.
#[derive(Debug, clap::Args)]
struct Compute {
    /// `cpu`, `cuda`, or `auto` (CUDA when available).
    #[arg(long, value_enum, default_value = "auto")]
    device: kd_experiment::config::DeviceChoice,
    /// `f32` (the report's test accuracy, what exported float files compute), `run`
    /// (the precision the run evaluated the model in, recorded in the file), `bf16` or
    /// `f16`.
    #[arg(long, value_enum, default_value = "f32")]
    precision: kd_experiment::eval_precision::EvalPrecision,
    /// libtorch CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl Compute {
    /// Sets the thread count; returns the device.
    fn apply(&self) -> anyhow::Result<tch::Device> {
        set_threads(self.threads);
        self.device.resolve("--device")
    }
}

/// `--threads N`: libtorch's CPU thread count, unless 0 (libtorch's default).
fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

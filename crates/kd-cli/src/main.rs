//! `kd-cli`: the command-line front end of kd. It parses, wires the library crates together
//! and reports; the work happens in `kd-data`, `kd-models`, `kd-core` and `kd-train`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kd_cli::eval_precision::EvalPrecision;
use kd_cli::{
    bench, bench_latency, check, compare, config, doctor, env, eval, export, export_onnx, launch,
    logging, oom, predict, run, summary,
};

/// Knowledge distillation on libtorch.
#[derive(Debug, Parser)]
#[command(name = "kd-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (debug level); `RUST_LOG` overrides both flags.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Warnings and errors only, no progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train (or load) a teacher, distill a student, train the same student from scratch,
    /// and compare the three on the test set.
    #[command(after_help = "Examples:
  kd-cli run configs/quickstart.toml
  kd-cli run configs/quickstart.toml --seed 3 --set distill.loss=dkd --out runs/dkd-3
  kd-cli run configs/quickstart.toml --resume runs/quickstart/seed-19   # after an interruption")]
    Run {
        /// The experiment's TOML config, e.g. configs/quickstart.toml.
        config: PathBuf,
        /// Run directory (default: runs/<name>/seed-<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overrides the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Overrides the config's CPU thread count.
        #[arg(long)]
        threads: Option<usize>,
        /// Overrides one config key, e.g. `--set student.train.lr=3e-4` (repeatable; bare
        /// words are strings, `--set distill.loss=dkd`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<config::Override>,
        /// Continues the interrupted run in this directory from its last checkpoints (give
        /// the same config and overrides it was started with).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Overrides the config's device: `cpu`, `cuda`, or `auto` (CUDA when available).
        #[arg(long, value_enum)]
        device: Option<config::DeviceChoice>,
    },
    /// Check a config without training: print the resolved config, the data found, both
    /// models' summaries, the device and run directory, and warnings for surprising
    /// resolutions. Exits non-zero where `run` would fail before training.
    #[command(after_help = "Examples:
  kd-cli check configs/quickstart.toml
  kd-cli check configs/quickstart.toml --set distill.loss=dkd --set student.train.epochs=5")]
    Check {
        /// The experiment's TOML config.
        config: PathBuf,
        /// Overrides one config key, as `run --set` does (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<config::Override>,
        /// Overrides the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Run directory `run --out` would use.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overrides the config's device: `cpu`, `cuda`, or `auto`.
        #[arg(long, value_enum)]
        device: Option<config::DeviceChoice>,
    },
    /// Runs `kd-cli run` as N local processes training one model data-parallel (PyTorch's
    /// c10d with Gloo), as `torchrun --nproc-per-node N` does; docs/distributed.md.
    #[command(after_help = "Example:
  kd-cli launch --nproc 2 configs/quickstart.toml --out runs/dp")]
    Launch {
        /// Number of processes (ranks).
        #[arg(long)]
        nproc: usize,
        /// Port of the rendezvous store on 127.0.0.1 (default: a free one).
        #[arg(long)]
        master_port: Option<u16>,
        /// The config and `run` options, e.g. `configs/quickstart.toml --out runs/dp`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        run_args: Vec<String>,
    },
    /// Accuracy, per-class accuracy and confusion matrix of a model saved by `kd-cli run`,
    /// on its dataset's test split (the model file names its dataset and preprocessing).
    #[command(after_help = "Examples:
  kd-cli eval runs/quickstart/seed-19/distilled.safetensors
  kd-cli eval runs/quickstart/seed-19/checkpoints/distilled/best.safetensors --json
  kd-cli eval runs/quickstart/seed-19/distilled.safetensors --precision run")]
    Eval {
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
        device: config::DeviceChoice,
        /// `f32` (the report's test accuracy, what exported float files compute), `run`
        /// (the precision the run evaluated the model in, recorded in the file), `bf16` or
        /// `f16`.
        #[arg(long, value_enum, default_value = "f32")]
        precision: EvalPrecision,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The top classes of images (PNG, JPEG, BMP, TGA) under a model saved by `kd-cli run`.
    /// Images that cannot be read are reported, the others predicted, and the exit status
    /// is non-zero if any failed.
    #[command(after_help = "Example:
  kd-cli predict runs/quickstart/seed-19/distilled.safetensors shoe.png shirt.jpg --top-k 2")]
    Predict {
        /// A `.safetensors` file from a run directory.
        model: PathBuf,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many classes to show per image (at least 1).
        #[arg(long, default_value_t = 3, value_parser = parse_top_k)]
        top_k: usize,
        /// `cpu`, `cuda`, or `auto` (CUDA when available).
        #[arg(long, value_enum, default_value = "auto")]
        device: config::DeviceChoice,
        /// `f32` (the report's test accuracy, what exported float files compute), `run`
        /// (the precision the run evaluated the model in, recorded in the file), `bf16` or
        /// `f16`.
        #[arg(long, value_enum, default_value = "f32")]
        precision: EvalPrecision,
        /// Print JSON instead of one line per image.
        #[arg(long)]
        json: bool,
    },
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
    Export {
        /// A `.safetensors` file from a run directory.
        model: PathBuf,
        /// The output format: `torchscript` (a traced module for `torch.jit.load`, C++
        /// `torch::jit::load` and tch's `CModule`) or `onnx`.
        #[arg(long, default_value = "torchscript")]
        format: String,
        /// Where to write the exported file, e.g. distilled.pt or distilled.onnx.
        #[arg(long)]
        out: PathBuf,
        /// `int8`: static post-training quantization (ONNX only): int8 weights per output
        /// channel, uint8 activations per tensor calibrated on training images.
        #[arg(long, value_enum)]
        quantize: Option<export_onnx::Quantize>,
        /// Training images that calibrate the int8 activation ranges (the first N; default
        /// 1,000, or all the training images where there are fewer).
        #[arg(long)]
        calibration_images: Option<usize>,
        /// The dataset's directory, for calibration and the exported file's test accuracy
        /// (default: where `cargo xtask fetch-data` puts it).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Configuration helpers.
    #[command(after_help = "Example:
  kd-cli config default > my.toml && kd-cli check my.toml")]
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a Keras-style summary (layers, output shapes, parameters) of the config's
    /// teacher and student.
    #[command(after_help = "Examples:
  kd-cli summary configs/cifar10.toml
  kd-cli summary configs/quickstart.toml --set student.model.width=32")]
    Summary {
        /// The experiment's TOML config.
        config: PathBuf,
        /// Overrides one config key, as `run --set` does (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<config::Override>,
    },
    /// Time training and inference steps of the seed's models on synthetic 32x32x3 batches,
    /// as the PyTorch and Keras anchor scripts do; one JSON line per mode. `--mode latency`
    /// instead times the MODEL files named, batch 1 and 256, and prints a table.
    #[command(after_help = "Examples:
  kd-cli bench --mode student,eval --steps 10
  kd-cli bench --precision bf16 --channels-last --threads 2
  kd-cli bench --mode latency runs/quickstart/seed-1/teacher.safetensors runs/quickstart/seed-1/distilled.safetensors distilled.int8.onnx")]
    Bench {
        /// Modes to time, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "teacher,student,distill,distill-cached,eval"
        )]
        mode: Vec<bench::BenchMode>,
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
        device: config::DeviceChoice,
        /// libtorch CPU threads (0: libtorch's default).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// `f32`, or mixed precision `bf16` / `f16` (libtorch autocast).
        #[arg(long, default_value = "f32", value_parser = parse_precision)]
        precision: kd_models::Precision,
        /// Inputs and convolution kernels in channels-last (NHWC) memory format.
        #[arg(long)]
        channels_last: bool,
        /// Training steps as CUDA graphs (captured once, replayed), as `run` does on a GPU.
        #[arg(long)]
        cuda_graphs: bool,
        /// Model files for `--mode latency`: `.safetensors` from a run directory (timed in
        /// libtorch) and `.onnx` from `kd-cli export` (timed in tract and onnxruntime).
        models: Vec<PathBuf>,
    },
    /// Compare runs (e.g. one per seed): per-run and mean test accuracies.
    #[command(after_help = "Examples:
  kd-cli compare runs/quickstart                 # every seed-* run under it
  kd-cli compare runs/quickstart/seed-1 runs/quickstart/seed-2")]
    Compare {
        /// `report.json` files, run directories, or directories of runs (`runs/quickstart`).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Print the torch version, the device that will be used, CUDA/cuDNN availability and
    /// the thread count.
    Env,
    /// Check that this machine runs kd correctly (in well under a minute): the seed's models
    /// on the device against the CPU, a training step, bf16 autocast, an all-reduce, a
    /// checkpoint round trip. Exits non-zero if any check fails.
    #[command(after_help = "Examples:
  kd-cli doctor
  kd-cli doctor --device cuda")]
    Doctor {
        /// `cpu`, `cuda`, or `auto` (CUDA when available).
        #[arg(long, value_enum, default_value = "auto")]
        device: config::DeviceChoice,
    },
}

/// `kd-cli config ...`.
#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the default configuration, every key commented.
    Default,
}

/// `--top-k`'s parser: a count of at least 1.
fn parse_top_k(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("expected at least 1 class per image, got 0".into()),
        Ok(k) => Ok(k),
        Err(_) => Err(format!("expected a whole number of classes, got {text:?}")),
    }
}

/// `--precision`'s parser.
fn parse_precision(name: &str) -> Result<kd_models::Precision, String> {
    kd_models::Precision::from_name(name)
        .ok_or_else(|| format!("expected f32, bf16 or f16, got {name:?}"))
}

/// `kd-cli eval`: evaluates and prints the result as text or JSON.
fn eval_command(
    model: &Path,
    data: Option<PathBuf>,
    split: &str,
    (device, precision): (config::DeviceChoice, EvalPrecision),
    json: bool,
) -> anyhow::Result<()> {
    let result = eval::eval(model, data, split, device.resolve("--device")?, precision)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", result.text());
    }
    Ok(())
}

/// `kd-cli predict`: prints the predictions of the images that could be read, names each
/// that could not, and fails if any could not.
fn predict_command(
    model: &Path,
    images: &[PathBuf],
    top_k: usize,
    (device, precision): (config::DeviceChoice, EvalPrecision),
    json: bool,
) -> anyhow::Result<()> {
    let device = device.resolve("--device")?;
    let p = predict::predict(model, images, top_k, device, precision)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&p.predicted)?);
    } else {
        print!("{}", predict::text(&p.predicted));
    }
    if let ([], [only]) = (p.predicted.as_slice(), p.failed.as_slice()) {
        anyhow::bail!("{only}");
    }
    for failure in &p.failed {
        eprintln!("error: {failure}");
    }
    if !p.failed.is_empty() {
        anyhow::bail!(
            "{} of {} images could not be read (named above){}",
            p.failed.len(),
            p.failed.len() + p.predicted.len(),
            if p.predicted.is_empty() {
                ""
            } else {
                "; the others are predicted"
            }
        );
    }
    Ok(())
}

/// `kd-cli bench --mode latency MODEL...`: the table of the model files.
fn latency_command(
    mode: &[bench::BenchMode],
    threads: usize,
    models: &[PathBuf],
) -> anyhow::Result<()> {
    if mode.len() > 1 {
        anyhow::bail!(
            "--mode latency: time models alone (the other modes time the seed's synthetic steps)"
        );
    }
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let python = bench_latency::venv_python();
    let rows = bench_latency::bench_latency(models, python.as_deref())?;
    print!("{}", bench_latency::text(&rows));
    Ok(())
}

/// Sets the device and thread count of `kd-cli bench`, runs it, prints its lines.
fn bench_command(
    mut args: bench::BenchArgs,
    device: config::DeviceChoice,
    threads: usize,
) -> anyhow::Result<()> {
    let device = device.resolve("--device")?;
    if args.batch == 0 || args.steps == 0 {
        anyhow::bail!("--batch and --steps: expected at least 1");
    }
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    kd_cli::env::keep_freed_memory(args.precision);
    args.device = device;
    env::prepare_device(device);
    for line in bench::bench(&args)? {
        println!("{line}");
    }
    Ok(())
}

impl Command {
    /// The subcommand as typed (for messages).
    fn name(&self) -> &'static str {
        match self {
            Self::Run { .. } => "run",
            Self::Check { .. } => "check",
            Self::Launch { .. } => "launch",
            Self::Eval { .. } => "eval",
            Self::Predict { .. } => "predict",
            Self::Export { .. } => "export",
            Self::Config { .. } => "config",
            Self::Summary { .. } => "summary",
            Self::Bench { .. } => "bench",
            Self::Compare { .. } => "compare",
            Self::Env => "env",
            Self::Doctor { .. } => "doctor",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    oom::install_panic_hook();
    kd_sys::file_size_limit_as_error();
    // Under a launcher, ranks other than 0 log warnings only (rank 0 tells the story).
    let other_rank = std::env::var("RANK").is_ok_and(|r| r != "0");
    let level = match (cli.verbose, cli.quiet || other_rank) {
        (true, _) => "debug",
        (_, true) => "warn",
        _ => "info",
    };
    logging::init(level);
    // `run` and `bench` decide once they know their precision.
    if !matches!(cli.command, Command::Run { .. } | Command::Bench { .. }) {
        kd_cli::env::keep_freed_memory(kd_models::Precision::F32);
    }
    oom::set_activity(format!("running kd-cli {}", cli.command.name()));
    let quiet = cli.quiet;
    let result = oom::guard(None, || execute(cli.command, quiet));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
fn execute(command: Command, quiet: bool) -> anyhow::Result<()> {
    match command {
        Command::Env => {
            env::print_env();
            Ok(())
        }
        Command::Doctor { device } => {
            let device = device.resolve("--device")?;
            env::prepare_device(device);
            let report = doctor::doctor(device)?;
            print!("{}", report.text());
            if !report.healthy() {
                anyhow::bail!("doctor: some checks failed (see the table above)");
            }
            Ok(())
        }
        Command::Bench {
            mode,
            threads,
            models,
            ..
        } if mode.contains(&bench::BenchMode::Latency) => latency_command(&mode, threads, &models),
        Command::Bench {
            mode,
            batch,
            steps,
            warmup,
            device,
            threads,
            precision,
            channels_last,
            cuda_graphs,
            models,
        } => {
            if !models.is_empty() {
                anyhow::bail!("MODEL files are timed by --mode latency only");
            }
            bench_command(
                bench::BenchArgs {
                    modes: mode,
                    batch,
                    steps,
                    warmup,
                    device: tch::Device::Cpu,
                    precision,
                    channels_last,
                    cuda_graphs,
                },
                device,
                threads,
            )
        }
        Command::Summary { config, sets } => {
            summary::summary(&config, &sets).map(|t| print!("{t}"))
        }
        Command::Check {
            config,
            sets,
            seed,
            out,
            device,
        } => check::check(
            &config,
            &run::RunOverrides {
                out,
                seed,
                sets,
                device,
                ..Default::default()
            },
        )
        .map(|t| print!("{t}")),
        Command::Compare { reports } => compare::compare(&reports).map(|t| print!("{t}")),
        Command::Eval {
            model,
            data,
            split,
            device,
            precision,
            json,
        } => eval_command(&model, data, &split, (device, precision), json),
        Command::Predict {
            model,
            images,
            top_k,
            device,
            precision,
            json,
        } => predict_command(&model, &images, top_k, (device, precision), json),
        Command::Export {
            model,
            format,
            out,
            quantize,
            calibration_images,
            data,
        } => match format.as_str() {
            "onnx" => {
                let options = export_onnx::OnnxOptions {
                    quantize,
                    calibration_images,
                    data,
                };
                export_onnx::export_onnx(&model, &out, &options).map(|e| print!("{}", e.text()))
            }
            _ if quantize.is_some() => Err(anyhow::anyhow!(
                "--quantize: only with --format onnx (got --format {format})"
            )),
            _ => export::export(&model, &format, &out).map(|()| {
                println!(
                    "wrote {} (TorchScript; input: float images in [0, 1])",
                    out.display()
                )
            }),
        },
        Command::Launch {
            nproc,
            master_port,
            run_args,
        } => launch::launch(nproc, master_port, &run_args),
        Command::Config {
            action: ConfigAction::Default,
        } => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Run {
            config,
            out,
            seed,
            threads,
            sets,
            resume,
            device,
        } => run::run(
            &config,
            &run::RunOverrides {
                out,
                seed,
                threads,
                sets,
                resume,
                device,
                quiet,
            },
        )
        .map(|r| {
            // Under a launcher every rank runs; rank 0 reports.
            if std::env::var("RANK").is_ok_and(|r| r != "0") {
                return;
            }
            print!("{}", r.table())
        }),
    }
}

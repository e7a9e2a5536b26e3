//! `kd-cli`: the command-line front end of kd. It parses, wires the library crates together
//! and reports; the work happens in `kd-data`, `kd-models`, `kd-core` and `kd-train`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kd_cli::{bench, compare, config, env, eval, export, launch, oom, predict, run, summary};

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
    },
    /// Runs `kd-cli run` as N local processes training one model data-parallel (PyTorch's
    /// c10d with Gloo), as `torchrun --nproc-per-node N` does; docs/distributed.md.
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
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The top classes of images (PNG, JPEG, BMP, TGA) under a model saved by `kd-cli run`.
    Predict {
        /// A `.safetensors` file from a run directory.
        model: PathBuf,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many classes to show per image.
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        /// `cpu`, `cuda`, or `auto` (CUDA when available).
        #[arg(long, value_enum, default_value = "auto")]
        device: config::DeviceChoice,
        /// Print JSON instead of one line per image.
        #[arg(long)]
        json: bool,
    },
    /// Export a model saved by `kd-cli run` for use without kd: `--format torchscript`
    /// writes a module Python's `torch.jit.load` runs, preprocessing included (input: float
    /// images in [0, 1] at the dataset's native size; output: logits).
    Export {
        /// A `.safetensors` file from a run directory.
        model: PathBuf,
        #[arg(long, default_value = "torchscript")]
        format: String,
        /// Where to write the exported file, e.g. distilled.pt.
        #[arg(long)]
        out: PathBuf,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a Keras-style summary (layers, output shapes, parameters) of the config's
    /// teacher and student.
    Summary {
        /// The experiment's TOML config.
        config: PathBuf,
    },
    /// Time training and inference steps of the seed's models on synthetic 32x32x3 batches,
    /// as the PyTorch and Keras anchor scripts do; one JSON line per mode.
    Bench {
        /// Modes to time, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "teacher,student,distill,distill-cached,eval"
        )]
        mode: Vec<bench::BenchMode>,
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
    },
    /// Compare runs (e.g. one per seed): per-run and mean test accuracies.
    Compare {
        /// `report.json` files or run directories.
        reports: Vec<PathBuf>,
    },
    /// Print the torch version, the device that will be used, CUDA/cuDNN availability and
    /// the thread count.
    Env,
}

/// `kd-cli config ...`.
#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the default configuration, every key commented.
    Default,
}

/// `--precision`'s parser.
fn parse_precision(name: &str) -> Result<kd_models::Precision, String> {
    kd_models::Precision::from_name(name)
        .ok_or_else(|| format!("expected f32, bf16 or f16, got {name:?}"))
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
    args.device = device;
    env::prepare_device(device);
    for line in bench::bench(&args)? {
        println!("{line}");
    }
    Ok(())
}

/// Largest block glibc serves from (and keeps in) its heap: 64 MiB, above the largest
/// activation of a training step at batch 128 (the seed student's 33.5 MB), below the
/// 100 MB activations of evaluation batches of 1,000, which are returned to the system
/// after use instead of growing the heap (the quickstart's peak memory: 1,414 MiB with a
/// 1 GiB limit).
const RETAINED_BLOCK_BYTES: usize = 64 << 20;

/// Lets libtorch reuse freed activation buffers instead of mapping fresh pages every step
/// ([`kd_sys::retain_freed_memory`]); `KD_RETAIN_FREED_MEMORY=0` keeps glibc's defaults.
fn keep_freed_memory() {
    if std::env::var("KD_RETAIN_FREED_MEMORY").as_deref() == Ok("0") {
        return;
    }
    if !kd_sys::retain_freed_memory(RETAINED_BLOCK_BYTES) {
        tracing::debug!("glibc refused the malloc thresholds; keeping its defaults");
    }
}

impl Command {
    /// The subcommand as typed (for messages).
    fn name(&self) -> &'static str {
        match self {
            Self::Run { .. } => "run",
            Self::Launch { .. } => "launch",
            Self::Eval { .. } => "eval",
            Self::Predict { .. } => "predict",
            Self::Export { .. } => "export",
            Self::Config { .. } => "config",
            Self::Summary { .. } => "summary",
            Self::Bench { .. } => "bench",
            Self::Compare { .. } => "compare",
            Self::Env => "env",
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    keep_freed_memory();
    oom::set_activity(format!("running kd-cli {}", cli.command.name()));
    let result = oom::guard(None, || match cli.command {
        Command::Env => {
            env::print_env();
            Ok(())
        }
        Command::Bench {
            mode,
            batch,
            steps,
            warmup,
            device,
            threads,
            precision,
            channels_last,
        } => bench_command(
            bench::BenchArgs {
                modes: mode,
                batch,
                steps,
                warmup,
                device: tch::Device::Cpu,
                precision,
                channels_last,
            },
            device,
            threads,
        ),
        Command::Summary { config } => summary::summary(&config).map(|t| print!("{t}")),
        Command::Compare { reports } => compare::compare(&reports).map(|t| print!("{t}")),
        Command::Eval {
            model,
            data,
            split,
            device,
            json,
        } => device
            .resolve("--device")
            .and_then(|d| eval::eval(&model, data, &split, d))
            .and_then(|r| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    print!("{}", r.text());
                }
                Ok(())
            }),
        Command::Predict {
            model,
            images,
            top_k,
            device,
            json,
        } => device
            .resolve("--device")
            .and_then(|d| predict::predict(&model, &images, top_k, d))
            .and_then(|p| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                } else {
                    print!("{}", predict::text(&p));
                }
                Ok(())
            }),
        Command::Export { model, format, out } => export::export(&model, &format, &out).map(|()| {
            println!(
                "wrote {} (TorchScript; input: float images in [0, 1])",
                out.display()
            )
        }),
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
        } => run::run(
            &config,
            &run::RunOverrides {
                out,
                seed,
                threads,
                sets,
                resume,
                quiet: cli.quiet,
            },
        )
        .map(|r| {
            // Under a launcher every rank runs; rank 0 reports.
            if std::env::var("RANK").is_ok_and(|r| r != "0") {
                return;
            }
            print!("{}", r.table())
        }),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

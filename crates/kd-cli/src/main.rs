//! `kd-cli`: the command-line front end of kd. It parses, wires the library crates together
//! and reports; the work happens in `kd-data`, `kd-models`, `kd-core` and `kd-train`.

mod atomic;
mod compare;
mod config;
mod env;
mod report;
mod run;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Knowledge distillation on libtorch.
#[derive(Debug, Parser)]
#[command(name = "kd-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
    /// Print a Keras-style summary (layers, output shapes, parameters) of the config's
    /// teacher and student.
    Summary {
        /// The experiment's TOML config.
        config: PathBuf,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Env => {
            env::print_env();
            Ok(())
        }
        Command::Summary { config } => summary::summary(&config).map(|t| print!("{t}")),
        Command::Compare { reports } => compare::compare(&reports).map(|t| print!("{t}")),
        Command::Run {
            config,
            out,
            seed,
            threads,
        } => run::run(&config, &run::RunOverrides { out, seed, threads })
            .map(|r| print!("{}", r.table())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

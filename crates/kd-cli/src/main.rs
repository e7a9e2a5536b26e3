//! `kd-cli`: the command-line front end of kd. It parses arguments, sets up logging and
//! progress bars, and prints; the work happens in `kd-experiment` and the crates under it.

mod commands;
mod launch;
mod logging;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use commands::Command;
use kd_experiment::oom;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    oom::install_panic_hook();
    kd_sys::file_size_limit_as_error();
    // Under a launcher, ranks other than 0 log warnings only (rank 0 tells the story).
    let other_rank = std::env::var("RANK").is_ok_and(|r| r != "0");
    let level = match (cli.verbose, cli.quiet || other_rank) {
        (true, _) => "debug",
        (_, true) => "warn",
        // A tune tells one line per trial and rung, not each fit's epochs (`-v` shows them).
        _ if matches!(cli.command, Command::Tune(_)) => {
            "info,kd_train=warn,kd_experiment::run=warn"
        }
        _ => "info",
    };
    logging::init(level);
    // `run`, `tune` and `bench` decide once they know their precision.
    if !cli.command.picks_its_precision() {
        kd_experiment::env::keep_freed_memory(kd_models::Precision::F32);
    }
    let activity = format!("running kd-cli {}", cli.command.name());
    let quiet = cli.quiet;
    let result = oom::guard(&activity, None, || cli.command.run(quiet));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

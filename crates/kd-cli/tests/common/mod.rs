//! Helpers shared by the CLI tests: run the built `kd-cli`, read what it wrote.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `kd-cli` binary with `args` in `cwd`, logging warnings and errors only.
pub fn kd_cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kd-cli"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Parses a JSON file the run wrote (`report.json`).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

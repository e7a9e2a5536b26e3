//! Helpers shared by the CLI tests: run the built `kd-cli`, read what it wrote.

use std::path::{Path, PathBuf};
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

/// The workspace's real Fashion-MNIST directory, or `None` (and a `SKIPPED` note) when
/// `cargo xtask fetch-data` has not put it there.
pub fn fashion_mnist() -> Option<PathBuf> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
    if !data.join("train-images-idx3-ubyte.gz").exists() {
        eprintln!(
            "SKIPPED: {} has no Fashion-MNIST (run `cargo xtask fetch-data`)",
            data.display()
        );
        return None;
    }
    Some(data.canonicalize().unwrap())
}

/// Runs `kd-cli run CONFIG --out OUT` in `cwd`, asserting success, and returns the report.
pub fn run_ok(cwd: &Path, config: &str, out: &str) -> serde_json::Value {
    let output = kd_cli(&["run", config, "--out", out], cwd);
    assert!(
        output.status.success(),
        "kd-cli run {config} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_json(&cwd.join(out).join("report.json"))
}

/// The Python of the venv `cargo xtask setup` made (`KD_VENV`, or `<workspace>/.venv`), with
/// PyTorch; `None` (and a `SKIPPED` note) when there is none.
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("KD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    if python.exists() {
        Some(python)
    } else {
        eprintln!(
            "SKIPPED: no venv Python at {} (run `cargo xtask setup`)",
            python.display()
        );
        None
    }
}

//! Helpers shared by the CLI tests: run the built `kd-cli`, read what it wrote.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

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

/// Starts the `kd-cli` binary with `args` in `cwd`, its output discarded (a process to kill).
pub fn spawn_kd_cli(args: &[&str], cwd: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kd-cli"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Parses a JSON file the run wrote (`report.json`).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The workspace's real Fashion-MNIST directory; when `cargo xtask fetch-data` has not put
/// it there, `test` fails under CI and is reported as skipped elsewhere ([`kd_testkit::require`]).
pub fn fashion_mnist(test: &str) -> Option<PathBuf> {
    kd_testkit::require(
        test,
        kd_testkit::fashion_mnist(env!("CARGO_MANIFEST_DIR")),
        "no Fashion-MNIST in data/fashion-mnist (run `cargo xtask fetch-data`)",
    )
    .map(|d| d.canonicalize().unwrap())
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
/// PyTorch; when there is none, `test` fails under CI and is reported as skipped elsewhere.
pub fn venv_python(test: &str) -> Option<PathBuf> {
    kd_testkit::require(
        test,
        kd_testkit::venv_python(env!("CARGO_MANIFEST_DIR")),
        "no venv Python with PyTorch (run `cargo xtask setup`)",
    )
}

pub fn idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an MNIST-style dataset of 12x12 images: class `k` (of 4) lights the `k`-th
/// quadrant, plus deterministic noise.
pub fn write_dataset(dir: &Path, train: usize, test: usize) {
    let make = |n: usize, salt: usize| {
        let (mut px, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let k = (i * 7 + salt) % 4;
            labels.push(k as u8);
            for y in 0..12 {
                for x in 0..12 {
                    let quadrant = (y / 6) * 2 + x / 6;
                    let noise = ((i * 31 + y * 17 + x * 13 + salt) % 80) as u8;
                    px.push(if quadrant == k { 160 + noise } else { noise });
                }
            }
        }
        (idx(&[n, 12, 12], &px), idx(&[n], &labels))
    };
    let (x, y) = make(train, 0);
    std::fs::write(dir.join("train-images-idx3-ubyte"), x).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), y).unwrap();
    let (x, y) = make(test, 1);
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), x).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), y).unwrap();
}

/// A tiny experiment on the dataset of [`write_dataset`] (seconds on a CPU).
pub const TINY_CONFIG: &str = r#"
name = "tiny"
seed = 3
threads = 1
[data]
dir = "data"
validation_holdout = 40
[teacher.model]
kind = "cnn"
channels = [8, 16]
convs_per_stage = 1
hidden = 16
dropout = 0.0
[teacher.train]
epochs = 3
batch_size = 32
lr = 0.01
[student.model]
kind = "student"
blocks = 2
convs_per_block = 1
width = 4
[student.train]
epochs = 2
batch_size = 32
lr = 0.01
[distill]
alpha = 0.5
temperature = 2.0
"#;

/// A temporary directory with `data/` (240 training, 80 test images) and `run.toml`.
pub fn workspace_with(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write_dataset(&dir.path().join("data"), 240, 80);
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, config).unwrap();
    (dir, cfg)
}

/// A free TCP port on the loopback interface, for a c10d store.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

//! Data-parallel runs on PyTorch's c10d (Gloo on 127.0.0.1), as a user starts them: two
//! ranks under `kd-cli launch` end with the weights one process reaches with the same
//! global batch and seed, and a rank that dies makes the others stop with a clear error
//! instead of waiting forever.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{kd_cli, read_json, run_ok, venv_python, workspace_with, TINY_CONFIG};

/// The tiny experiment with models that have no batch norm and no dropout (whose
/// statistics and random numbers are per rank), a global batch of 25 (shares of 12 and
/// 13 images: unequal), and no early stopping (so both runs take every epoch); in float32,
/// where the weighted sum of the ranks' gradients is the one process's to rounding (bf16,
/// the default on CPUs with native bf16, rounds each rank's activations differently).
fn config() -> String {
    TINY_CONFIG
        .replace("threads = 1", "threads = 1\nprecision = \"f32\"")
        .replace(
            "kind = \"cnn\"\nchannels = [8, 16]\nconvs_per_stage = 1\nhidden = 16\ndropout = 0.0",
            "kind = \"student\"\nblocks = 2\nconvs_per_block = 1\nwidth = 6",
        )
        .replace("batch_size = 32", "batch_size = 25")
}

fn tensors(path: &Path) -> std::collections::BTreeMap<String, tch::Tensor> {
    kd_models::tensor_file::read_tensors(path).unwrap()
}

#[test]
fn two_ranks_reach_the_weights_of_one_process_with_the_same_global_batch() {
    let (dir, _) = workspace_with(&config());
    std::fs::write(dir.path().join("run.toml"), config()).unwrap();
    let single = run_ok(dir.path(), "run.toml", "single");
    let out = kd_cli(
        &["launch", "--nproc", "2", "run.toml", "--out", "double"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let double = read_json(&dir.path().join("double/report.json"));
    for role in ["teacher", "distilled", "scratch"] {
        let file = format!("{role}.safetensors");
        let (a, b) = (
            tensors(&dir.path().join("single").join(&file)),
            tensors(&dir.path().join("double").join(&file)),
        );
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            // Sums over ranks round differently from one process's sums: float tolerance.
            let diff = (t - &b[name]).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{role} {name} differs by {diff}");
        }
    }
    for i in 0..3 {
        let (x, y) = (&single["models"][i], &double["models"][i]);
        assert_eq!(x["epochs_run"], y["epochs_run"]);
        let gap =
            (x["test_accuracy"].as_f64().unwrap() - y["test_accuracy"].as_f64().unwrap()).abs();
        assert!(gap <= 0.0125, "{} accuracy {} vs {}", x["role"], x, y);
    }
    // Rank 0 alone wrote the run directory; one table was printed.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("distilled - scratch")
            .count(),
        1
    );
}

#[test]
fn a_rank_that_dies_stops_the_others_with_a_clear_error() {
    let config = config().replace("epochs = 3", "epochs = 40");
    let (dir, _) = workspace_with(&config);
    std::fs::write(dir.path().join("run.toml"), &config).unwrap();
    let port = crate::common::free_port();
    let rank = |r: usize| {
        Command::new(env!("CARGO_BIN_EXE_kd-cli"))
            .args(["run", "run.toml", "--out", "out"])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .env("RANK", r.to_string())
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("KD_DIST_TIMEOUT", "120")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (zero, mut one) = (rank(0), rank(1));
    // Kill rank 1 once training is under way (rank 0 has checkpointed an epoch).
    let marker = dir.path().join("out/checkpoints/teacher/last.safetensors");
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    one.kill().unwrap();
    one.wait().unwrap();
    let killed_at = Instant::now();
    let out = zero.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(100),
        "rank 0 waited for the timeout instead of noticing"
    );
    assert!(stderr.contains("rank 0 of 2"), "{stderr}");
    assert!(
        stderr.contains("did another rank fail or stop?"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `kd-cli launch --nproc 2` of the config with one `--set` override, into `o/`.
fn launch_two_with(set: &str) -> (tempfile::TempDir, std::process::Output) {
    let (dir, _) = workspace_with(&config());
    std::fs::write(dir.path().join("run.toml"), config()).unwrap();
    let args = [
        "launch", "--nproc", "2", "run.toml", "--out", "o", "--set", set,
    ];
    let out = kd_cli(&args, dir.path());
    (dir, out)
}

#[test]
fn a_student_batch_smaller_than_the_ranks_fails_before_the_teacher_trains() {
    let (dir, out) = launch_two_with("student.train.batch_size=1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("student.train.batch_size")
            && stderr.contains("at least the number of data-parallel ranks (2)"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("o/checkpoints/teacher").exists(),
        "the teacher started training"
    );
}

#[test]
fn launch_stops_every_rank_when_one_fails_and_names_it() {
    // Rank 1 cannot read its data: the launcher stops rank 0 and names rank 1.
    let (_dir, out) = launch_two_with("data.dir=nowhere");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("of 2 failed"), "{stderr}");
}

#[test]
fn kd_cli_run_works_unchanged_under_torchrun() {
    // torchrun serves the store itself and gives the workers a key prefix per attempt.
    let Some(python) = venv_python("kd_cli_run_works_unchanged_under_torchrun") else {
        return;
    };
    let torchrun = python.with_file_name("torchrun");
    let (dir, _) = workspace_with(&config());
    std::fs::write(dir.path().join("run.toml"), config()).unwrap();
    let single = run_ok(dir.path(), "run.toml", "single");
    let port = crate::common::free_port();
    let out = Command::new(&torchrun)
        .args([
            "--nproc-per-node",
            "2",
            "--master-port",
            &port.to_string(),
            "--no-python",
        ])
        .arg(env!("CARGO_BIN_EXE_kd-cli"))
        .args(["run", "run.toml", "--out", "torchrun"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_json(&dir.path().join("torchrun/report.json"));
    for i in 0..3 {
        let loss = |r: &serde_json::Value| r["models"][i]["test_loss"].as_f64().unwrap();
        assert!(
            (loss(&single) - loss(&report)).abs() < 1e-4,
            "{} vs {}",
            single["models"][i],
            report["models"][i]
        );
    }
}

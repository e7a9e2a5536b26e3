//! `kd-cli run CONFIG --resume DIR` as a user meets it: a run killed with SIGKILL in the
//! middle of training resumes to exactly the result of the same run left alone — bit for
//! bit on one machine with the same thread count (the config's `threads = 1` here; another
//! CPU's kernels round differently) — and a run directory is never resumed with another
//! configuration.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{kd_cli, read_json, run_ok, spawn_kd_cli, workspace_with, TINY_CONFIG};

/// The tiny experiment with dropout in the teacher (random numbers to restore) and more
/// epochs, so that a kill lands inside training.
fn config() -> String {
    TINY_CONFIG
        .replace("dropout = 0.0", "dropout = 0.3")
        .replace("epochs = 3", "epochs = 5")
        .replace("epochs = 2", "epochs = 4")
}

/// Every file under `dir` with its bytes, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The results of a run that do not depend on wall time: each model's test accuracy and
/// loss, epochs run, and every epoch's losses, accuracies and learning rate.
fn results(run: &Path) -> (Vec<String>, Vec<String>) {
    let report = read_json(&run.join("report.json"));
    let models = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m["role"], m["test_accuracy"], m["test_loss"], m["epochs_run"]
            )
        })
        .collect();
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let timing = |name: &str| name.contains("seconds") || name.contains("per_s");
    let epochs = lines
        .map(|line| {
            line.split(',')
                .zip(&header)
                .filter(|(_, name)| !timing(name))
                .map(|(value, _)| value)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (models, epochs)
}

/// Starts `kd-cli run run.toml --out OUT` and SIGKILLs it as soon as `marker` (a file under
/// OUT) exists; panics if the run ends first.
fn run_and_kill_when(cwd: &Path, out: &str, marker: &str) {
    let mut child = spawn_kd_cli(&["run", "run.toml", "--out", out], cwd);
    let marker = cwd.join(out).join(marker);
    let started = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before {} appeared",
                marker.display()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no {}",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no cleanup runs.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !cwd.join(out).join("report.json").exists(),
        "killed before the end"
    );
}

#[test]
fn a_run_killed_mid_training_resumes_to_the_uninterrupted_result_on_the_same_machine_and_threads() {
    let (dir, _) = workspace_with(&config());
    std::fs::write(dir.path().join("run.toml"), config()).unwrap();
    run_ok(dir.path(), "run.toml", "whole");
    let expected = results(&dir.path().join("whole"));
    let whole_files = files(&dir.path().join("whole"));

    // Killed during the teacher's training, and during the distilled student's.
    for (out, marker) in [
        ("cut-teacher", "checkpoints/teacher/last.safetensors"),
        ("cut-student", "checkpoints/distilled/last.safetensors"),
    ] {
        run_and_kill_when(dir.path(), out, marker);
        let resumed = kd_cli(&["run", "run.toml", "--resume", out], dir.path());
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_eq!(results(&dir.path().join(out)), expected, "{out}");
        let resumed_files = files(&dir.path().join(out));
        for model in [
            "teacher.safetensors",
            "distilled.safetensors",
            "scratch.safetensors",
            "checkpoints/distilled/best.safetensors",
        ] {
            assert!(
                resumed_files[model] == whole_files[model],
                "{out}/{model} differs from the uninterrupted run's"
            );
        }
        let events = std::fs::read_to_string(dir.path().join(out).join("events.jsonl")).unwrap();
        assert!(events.contains("\"resumed\""), "{events}");
    }
}

#[test]
fn a_run_directory_is_not_resumed_with_another_config() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    run_ok(dir.path(), "run.toml", "out");
    let before = files(&dir.path().join("out"));

    let out = kd_cli(
        &[
            "run",
            "run.toml",
            "--resume",
            "out",
            "--set",
            "student.train.lr=0.02",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("student.train.lr: 0.01 in the run, 0.02 now"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        files(&dir.path().join("out")) == before,
        "nothing was overwritten"
    );

    let out = kd_cli(&["run", "run.toml", "--resume", "nowhere"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--resume nowhere: not a run directory"),
        "{stderr}"
    );
    assert!(!dir.path().join("nowhere").exists());
}

//! Resource faults end a run with a clear error and leave the last good checkpoint intact:
//! a disk that refuses a checkpoint mid-run (a file-size limit, `RLIMIT_FSIZE`, makes the
//! write fail with "File too large" as a full disk fails it with "No space left"), a run
//! directory that cannot be created, and memory that cannot be allocated.

use std::path::Path;
use std::process::Command;

use crate::common::{kd_cli, read_json, run_ok, workspace_with, TINY_CONFIG};

/// A tiny run whose students' checkpoints are larger than the teacher's.
fn config() -> String {
    TINY_CONFIG
        .replace("channels = [8, 16]", "channels = [4]")
        .replace("hidden = 16", "hidden = 8")
        .replace("width = 4", "width = 48")
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn assert_clean_failure(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("frame #"), "no C++ backtrace: {stderr}");
    stderr
}

#[test]
fn a_checkpoint_the_disk_refuses_ends_the_run_and_resume_finishes_it() {
    let (dir, _) = workspace_with(&config());
    std::fs::write(dir.path().join("run.toml"), config()).unwrap();
    run_ok(dir.path(), "run.toml", "whole");
    let ck = |run: &str, phase: &str| {
        dir.path()
            .join(run)
            .join("checkpoints")
            .join(phase)
            .join("last.safetensors")
    };
    let (teacher, student) = (
        size(&ck("whole", "teacher")),
        size(&ck("whole", "distilled")),
    );
    assert!(
        student > teacher,
        "the limit must fall between {teacher} and {student}"
    );
    let limit = (teacher + student) / 2;

    // Files may grow to `limit` bytes: the teacher's checkpoints fit, the student's do not.
    let out = Command::new("prlimit")
        .arg(format!("--fsize={limit}"))
        .arg(env!("CARGO_BIN_EXE_kd-cli"))
        .args(["run", "run.toml", "--out", "cut"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = assert_clean_failure(&out);
    assert!(
        stderr.contains("checkpoints/distilled/last.partial.safetensors")
            && stderr.contains("File too large"),
        "{stderr}"
    );
    // The teacher's last checkpoint is whole and final (the same weights as in the run
    // that was not disturbed); no temporary file is left.
    let read = |run: &str| kd_models::tensor_file::read_tensors(&ck(run, "teacher")).unwrap();
    let (cut, whole) = (read("cut"), read("whole"));
    for (name, t) in whole.iter().filter(|(n, _)| n.starts_with("model/")) {
        assert!(cut[name].equal(t), "{name} differs");
    }
    let state = kd_models::metadata::read_metadata(&ck("cut", "teacher")).unwrap();
    assert!(state["kd.train_state"].contains("\"complete\":true"));
    assert!(!ck("cut", "distilled").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cut/checkpoints/distilled"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().contains("partial")),
        "{leftovers:?}"
    );

    // With room again, --resume finishes the run to the uninterrupted result.
    let resumed = kd_cli(&["run", "run.toml", "--resume", "cut"], dir.path());
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let accuracies = |run: &str| -> Vec<serde_json::Value> {
        read_json(&dir.path().join(run).join("report.json"))["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["test_accuracy"].clone())
            .collect()
    };
    assert_eq!(accuracies("cut"), accuracies("whole"));
}

#[test]
fn a_run_directory_that_cannot_be_created_is_named() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    // A regular file where a directory must go (file permissions do not stop root).
    std::fs::write(dir.path().join("taken"), b"a file").unwrap();
    let out = kd_cli(&["run", "run.toml", "--out", "taken/run"], dir.path());
    let stderr = assert_clean_failure(&out);
    assert!(
        stderr.contains("taken/run: cannot create the run directory"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"a file");
}

#[test]
fn memory_that_cannot_be_allocated_ends_the_run_with_the_teachers_checkpoint_intact() {
    // A student 4,194,304 channels wide: its second convolution alone needs 633 TB, more
    // than any address space; the teacher trains first and checkpoints.
    let config = TINY_CONFIG.replace("width = 4", "width = 4194304");
    let (dir, _) = workspace_with(&config);
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let stderr = assert_clean_failure(&out);
    assert!(
        stderr.contains("out of memory while building the distilled student")
            && stderr.contains("you tried to allocate")
            && stderr.contains("out/checkpoints"),
        "{stderr}"
    );
    let teacher = dir.path().join("out/checkpoints/teacher/last.safetensors");
    let meta = kd_models::metadata::read_metadata(&teacher).unwrap();
    assert!(meta["kd.train_state"].contains("\"complete\":true"));
    assert!(!dir.path().join("out/report.json").exists());
}

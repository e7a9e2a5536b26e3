//! A process killed with SIGKILL while it writes a safetensors file (a model or a checkpoint)
//! leaves the previous file or the new one at the target path — never a mix of the two,
//! never a truncated file.
//!
//! The writer is this test binary itself, re-run with `--ignored --exact` on the helper
//! below (by its path in the binary) and told the target path in
//! `KD_ATOMIC_TARGET`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kd_models::metadata::read_metadata;
use kd_models::tensor_file::{read_tensors, write_tensors};
use tch::{Device, Kind, Tensor};

const TARGET_ENV: &str = "KD_ATOMIC_TARGET";

/// The helper's name as libtest knows it: its module path in this test binary, without the
/// binary's own name (`atomic_write::writer_child`).
fn writer_name() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::writer_child")
}

/// Writes version 1, 2, 3, ... of a 16 MiB file to the target, forever: every element of
/// version `v` is `v`, and its metadata says `v`.
#[test]
#[ignore = "a child process of a_writer_killed_mid_write_leaves_a_whole_file"]
fn writer_child() {
    let Some(target) = std::env::var_os(TARGET_ENV) else {
        return;
    };
    for version in 1u32.. {
        let tensor = Tensor::full([4 << 20], f64::from(version), (Kind::Float, Device::Cpu));
        let meta = BTreeMap::from([("version".to_string(), version.to_string())]);
        write_tensors(Path::new(&target), &[("w".into(), tensor)], &meta).unwrap();
    }
}

/// The version of a whole file at `path`, checking that every element agrees with it.
fn whole_version(path: &Path) -> u32 {
    let meta = read_metadata(path).expect("the target is a readable safetensors file");
    let version: u32 = meta["version"].parse().unwrap();
    let w = &read_tensors(path).expect("every tensor is whole")["w"];
    assert_eq!(w.size(), vec![4 << 20]);
    let (lo, hi) = (w.min().double_value(&[]), w.max().double_value(&[]));
    assert!(
        lo == f64::from(version) && hi == f64::from(version),
        "a mix: metadata says {version}, elements span {lo}..{hi}"
    );
    version
}

/// When `path` was last modified, if it exists.
fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[test]
fn a_writer_killed_mid_write_leaves_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.safetensors");
    let partial = dir.path().join("model.partial.safetensors");
    let mut killed_mid_write = 0;
    for delay_ms in [0u64, 3, 7, 11, 16, 22, 29, 37, 46, 56] {
        let before = modified(&target);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", &writer_name(), "--nocapture"])
            .env(TARGET_ENV, &target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for this child's first completed write, then kill it a little later: the
        // writer is then almost always inside its next write.
        let started = std::time::Instant::now();
        while modified(&target) == before {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the writer never wrote"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if partial.exists() {
            killed_mid_write += 1;
            std::fs::remove_file(&partial).unwrap();
        }
        whole_version(&target);
    }
    assert!(
        killed_mid_write > 0,
        "no kill landed inside a write; the test proved nothing"
    );
}

//! `kd-cli doctor` on this machine's CPU: every check that applies passes, the ones that
//! need a GPU say so, and asking for a missing GPU is a one-line error.

use crate::common::kd_cli;

#[test]
fn the_doctor_passes_on_the_cpu_and_names_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(&["doctor", "--device", "cpu"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "PASS  seed student forward",
        "PASS  VGG19 teacher forward",
        "PASS  student training step",
        "PASS  bf16 autocast active",
        "PASS  all-reduce at world size 1 (gloo)",
        "PASS  checkpoint save/load round trip",
        "skip  CUDA graph steps = eager steps",
        "skip  all-reduce at world size 1 (nccl)",
    ] {
        assert!(text.contains(row), "no {row:?} in\n{text}");
    }
    assert!(
        text.contains("healthy on cpu: 6 passed, 0 failed, 2 skipped"),
        "{text}"
    );
    assert!(text.contains("torch         2.11.0"), "{text}");
}

#[test]
fn a_missing_gpu_is_a_one_line_error() {
    if tch::Cuda::is_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(&["doctor", "--device", "cuda"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--device: expected a CUDA device, but none is available"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

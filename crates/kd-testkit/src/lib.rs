//! What a test does when an asset it needs (real Fashion-MNIST, the venv's Python with
//! PyTorch, a TrueType font) is missing.
//!
//! - Under CI (`CI=true`, set by `.ci/run` and by most CI services) the set-up provides every
//!   asset, so a missing one is a test failure: [`require`] panics naming it.
//! - Elsewhere the test is skipped: [`require`] prints `SKIPPED: <test>: <reason>` and, when
//!   `KD_SKIP_LOG` names a file (`cargo xtask test` sets it), appends that line to it, so the
//!   skip is counted in the suite's summary instead of passing silently.
//!
//! [`outside`] builds a crate outside the workspace against kd's, as a user would.
//!
//! No libtorch here: xtask's tests use it too.

pub mod outside;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable naming the file that skipped tests append their lines to.
pub const SKIP_LOG_VAR: &str = "KD_SKIP_LOG";

/// Whether this process runs under CI, where missing assets are failures.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `Some(asset)` when `found` holds one; otherwise fails the test under CI, or reports
/// `test` as skipped for `reason` (printed, and counted through `KD_SKIP_LOG`) and returns
/// `None` so that the caller can return early.
pub fn require<T>(test: &str, found: Option<T>, reason: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    if under_ci() {
        panic!("{test}: {reason} (CI=true: the set-up must provide it)");
    }
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
        // One write per line, so that lines of tests running in parallel never interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            eprintln!(
                "cannot record the skip in {}: {e}",
                Path::new(&log).display()
            );
        }
    }
    None
}

/// The workspace root, from a crate directory one or two levels below it
/// (`crates/<name>` or `xtask`), as `env!("CARGO_MANIFEST_DIR")` gives it.
pub fn workspace_root(manifest_dir: &str) -> PathBuf {
    let dir = Path::new(manifest_dir);
    dir.ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(dir)
        .to_path_buf()
}

/// The real Fashion-MNIST directory that `cargo xtask fetch-data` fills, if it holds the
/// training images.
pub fn fashion_mnist(manifest_dir: &str) -> Option<PathBuf> {
    let dir = workspace_root(manifest_dir).join("data/fashion-mnist");
    dir.join("train-images-idx3-ubyte.gz")
        .is_file()
        .then_some(dir)
}

/// The venv's Python (`KD_VENV`, or `<workspace>/.venv`) that `cargo xtask setup` made, if
/// it exists.
pub fn venv_python(manifest_dir: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("KD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root(manifest_dir).join(".venv"));
    let python = venv.join("bin/python");
    python.is_file().then_some(python)
}

/// onnxruntime's first output for `images` (`shape` = `[n, c, h, w]`, float32) from the ONNX
/// file at `model`, computed by `scripts/onnx_run.py` in the venv's Python after
/// `onnx.checker`'s full check; `None` (skipped, or a failure under CI) without a venv.
/// Panics, with onnxruntime's message, when the file does not load or run.
pub fn onnxruntime_outputs(
    test: &str,
    manifest_dir: &str,
    model: &Path,
    images: &[f32],
    shape: [usize; 4],
) -> Option<Vec<f32>> {
    let python = require(
        test,
        venv_python(manifest_dir),
        "no venv with onnxruntime (run `cargo xtask setup`)",
    )?;
    let dir = tempfile_dir(model);
    let (input, output) = (dir.join("kd-ort-images.f32"), dir.join("kd-ort-logits.f32"));
    let bytes: Vec<u8> = images.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).expect("write the images");
    let script = workspace_root(manifest_dir).join("scripts/onnx_run.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(model)
        .arg(&input)
        .args(shape.iter().map(|d| d.to_string()))
        .arg(&output)
        .output()
        .expect("run Python");
    assert!(
        out.status.success(),
        "onnxruntime on {}: {}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = std::fs::read(&output).expect("read the logits");
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    Some(
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
    )
}

/// The folder of `file` (where the exchange files with Python go).
fn tempfile_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Every input of fuzz target `target` the repository keeps: its seed corpus
/// (`fuzz/corpus/<target>`) and the inputs that once crashed it (`fuzz/regressions/<target>`),
/// sorted; `manifest_dir` is the calling crate's, as `env!("CARGO_MANIFEST_DIR")` gives it.
pub fn fuzz_inputs(manifest_dir: &str, target: &str) -> Vec<PathBuf> {
    let fuzz = workspace_root(manifest_dir).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) {
            files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_asset_is_returned() {
        assert_eq!(require("t", Some(3), "never printed"), Some(3));
    }

    #[test]
    fn the_workspace_root_holds_the_lock_file() {
        let root = workspace_root(env!("CARGO_MANIFEST_DIR"));
        assert!(root.join("Cargo.lock").is_file(), "{}", root.display());
        assert!(root.join("crates/kd-testkit").is_dir());
    }

    #[test]
    fn a_missing_asset_fails_under_ci_and_is_logged_elsewhere() {
        // Run in a child process: the environment is process-wide.
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("kd-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips.log");
        let child = |ci: &str| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "tests::child_requires_a_missing_asset",
                    "--ignored",
                ])
                .env("CI", ci)
                .env(SKIP_LOG_VAR, &log)
                .env(CHILD_VAR, "1")
                .output()
                .unwrap()
        };
        let out = child("false");
        assert!(out.status.success(), "{out:?}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(logged, "SKIPPED: child: no such asset\n");
        let out = child("true");
        assert!(!out.status.success(), "a missing asset under CI must fail");
        let printed = [out.stdout, out.stderr].concat();
        assert!(String::from_utf8_lossy(&printed).contains("CI=true"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Set for the child process of the test above.
    const CHILD_VAR: &str = "KD_TESTKIT_CHILD";

    #[test]
    #[ignore = "run by a_missing_asset_fails_under_ci_and_is_logged_elsewhere in a child process"]
    fn child_requires_a_missing_asset() {
        // Run directly (`--include-ignored`), it does nothing.
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        assert!(require::<()>("child", None, "no such asset").is_none());
    }
}

//! `cargo xtask setup`: installs PyTorch 2.11.0 (the libtorch that `tch 0.24` is built for)
//! from PyPI into a virtual environment and points `<root>/.libtorch` at its `torch`
//! package, which `.cargo/config.toml` hands to torch-sys as `LIBTORCH`.
//!
//! The same venv gets onnxruntime and onnx, which the tests and benchmarks use to check
//! and time the ONNX files kd writes (kd itself runs them without Python); and, next to a
//! CUDA build of torch, the CUDA headers its wheels leave out (`nvidia-cuda-crt`,
//! `nvidia-cuda-cccl`), which kd-sys needs to compile CUDA graphs and NCCL.
//!
//! Idempotent and version-checked: an existing venv with torch 2.11.0 is reused; one with
//! another version is upgraded. The venv lives in `<root>/.venv`, or wherever `KD_VENV`
//! says; `KD_PYTHON` picks the interpreter that creates it (default `python3`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run_cmd};

/// The PyTorch release matching `tch = "=0.24.0"`.
pub const TORCH_VERSION: &str = "2.11.0";

/// The onnxruntime and onnx releases the tests check exported files with.
const ONNX_PACKAGES: [(&str, &str); 2] = [("onnxruntime", "1.31.1"), ("onnx", "1.23.2")];

/// The CUDA 13.0 header packages matching torch 2.11.0's CUDA runtime (13.0), and a header
/// each installs under `site-packages/nvidia/cu13/include`.
const CUDA_HEADER_PACKAGES: [(&str, &str, &str); 2] = [
    ("nvidia-cuda-crt", "13.0.88", "crt/host_config.h"),
    ("nvidia-cuda-cccl", "13.0.85", "nv/target"),
];

fn venv_dir() -> PathBuf {
    std::env::var_os("KD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"))
}

/// The venv's Python interpreter.
pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}

/// `torch.__version__` and the package directory as the venv's Python sees them.
fn installed_torch(python: &Path) -> Option<(String, PathBuf)> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    Some((lines.next()?.to_string(), PathBuf::from(lines.next()?)))
}

/// Makes sure libtorch is installed and linked; returns the `torch` package directory.
pub fn setup() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv_python();
    let current = installed_torch(&python);
    let torch_dir = match current {
        Some((version, dir)) if version.split('+').next() == Some(TORCH_VERSION) => {
            eprintln!("xtask: torch {version} already in {}", venv.display());
            dir
        }
        other => {
            if let Some((version, _)) = other {
                eprintln!(
                    "xtask: {} has torch {version}; installing {TORCH_VERSION}",
                    venv.display()
                );
            }
            if !python.exists() {
                let base = std::env::var("KD_PYTHON").unwrap_or_else(|_| "python3".into());
                run_cmd(Command::new(&base).arg("-m").arg("venv").arg(&venv))?;
            }
            run_cmd(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                &format!("torch=={TORCH_VERSION}"),
                "setuptools",
            ]))?;
            match installed_torch(&python) {
                Some((v, dir)) if v.split('+').next() == Some(TORCH_VERSION) => dir,
                Some((v, _)) => bail!(
                    "{}: expected torch {TORCH_VERSION} after install, found {v}",
                    venv.display()
                ),
                None => bail!("{}: torch does not import after install", venv.display()),
            }
        }
    };
    link_libtorch(&torch_dir)?;
    install_onnx_packages(&python)?;
    install_cuda_headers(&python, &torch_dir)?;
    Ok(torch_dir)
}

/// Installs [`CUDA_HEADER_PACKAGES`] where torch is a CUDA build and a header is missing.
fn install_cuda_headers(python: &Path, torch_dir: &Path) -> Result<()> {
    if !torch_dir.join("lib").join("libtorch_cuda.so").exists() {
        return Ok(());
    }
    let include = torch_dir.join("../nvidia/cu13/include");
    let missing: Vec<String> = CUDA_HEADER_PACKAGES
        .iter()
        .filter(|(_, _, header)| !include.join(header).exists())
        .map(|(name, version, _)| format!("{name}=={version}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run_cmd(
        Command::new(python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(missing),
    )
}

/// Installs [`ONNX_PACKAGES`] into the venv unless they are there in those versions.
fn install_onnx_packages(python: &Path) -> Result<()> {
    let check = ONNX_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}.__version__ == {version:?}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let imports = ONNX_PACKAGES.map(|(name, _)| name).join(", ");
    let present = Command::new(python)
        .args(["-c", &format!("import {imports}; assert {check}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let specs = ONNX_PACKAGES.map(|(name, version)| format!("{name}=={version}"));
    run_cmd(
        Command::new(python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(specs),
    )
}

/// Points `<root>/.libtorch` at `torch_dir` (replacing an older link atomically).
fn link_libtorch(torch_dir: &Path) -> Result<()> {
    if !torch_dir.join("lib").join("libtorch_cpu.so").exists() {
        bail!(
            "{}: expected libtorch's lib/libtorch_cpu.so inside",
            torch_dir.display()
        );
    }
    let link = root().join(".libtorch");
    if std::fs::read_link(&link).ok().as_deref() == Some(torch_dir) {
        return Ok(());
    }
    let tmp = root().join(".libtorch.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(torch_dir, &tmp)
        .with_context(|| format!("{}: cannot create symlink", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("{}: cannot replace", link.display()))?;
    eprintln!("xtask: {} -> {}", link.display(), torch_dir.display());
    Ok(())
}

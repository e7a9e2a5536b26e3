//! kd-core from another workspace, as its README section promises: a throwaway crate outside
//! this repository depends on `kd-core` by path and on `kd-build` in its `build.rs`, builds
//! with only `LIBTORCH` set, and its binary starts without `LD_LIBRARY_PATH` and computes
//! PyTorch's Hinton loss.
//!
//! The crate's build shares `target/outside-workspace` between runs (the first build compiles
//! torch-sys, a few minutes), and uses the workspace's `Cargo.lock` offline, so it builds the
//! same dependency versions this workspace does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The README's recipe, with `path` dependencies (a `git` dependency differs only in where
/// cargo fetches the same crates from).
fn manifest(root: &Path) -> String {
    let krate = |name: &str| root.join("crates").join(name).display().to_string();
    format!(
        r#"[package]
name = "outside"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
kd-core = {{ path = {core:?} }}
tch = "=0.24.0"

[build-dependencies]
kd-build = {{ path = {build:?} }}

[workspace]
"#,
        core = krate("kd-core"),
        build = krate("kd-build"),
    )
}

const BUILD_RS: &str = "fn main() {\n    kd_build::link_libtorch();\n}\n";

const MAIN_RS: &str = r#"use kd_core::{DistillLoss, HintonKdConfig};
use tch::Tensor;

fn main() {
    let s = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.0, 3.0, -1.0]).view([2, 3]);
    let t = Tensor::from_slice(&[2.0f32, -1.0, 0.0, 1.0, 2.0, 3.0]).view([2, 3]);
    let y = Tensor::from_slice(&[0i64, 2]);
    let loss = HintonKdConfig { alpha: 0.1, temperature: 4.0 }.build("distill").unwrap();
    let out = loss.loss(&s, &t, &y);
    println!("{}", out.total.double_value(&[]));
}
"#;

#[test]
fn a_crate_outside_the_workspace_builds_and_runs_without_ld_library_path() {
    let root = kd_testkit::workspace_root(env!("CARGO_MANIFEST_DIR"));
    let libtorch = root.join(".libtorch");
    let Some(libtorch) = kd_testkit::require(
        "a_crate_outside_the_workspace_builds_and_runs_without_ld_library_path",
        libtorch.join("lib").is_dir().then_some(libtorch),
        "no libtorch at .libtorch (run `cargo xtask setup`)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("outside");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(krate.join("Cargo.toml"), manifest(&root)).unwrap();
    std::fs::write(krate.join("build.rs"), BUILD_RS).unwrap();
    std::fs::write(krate.join("src/main.rs"), MAIN_RS).unwrap();
    // The same versions as this workspace, and the same toolchain.
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        krate.join("rust-toolchain.toml"),
    )
    .unwrap();
    let target: PathBuf = root.join("target/outside-workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("LIBTORCH", libtorch.canonicalize().unwrap())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the outside crate does not build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = Command::new(target.join("debug/outside"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the outside binary does not start without LD_LIBRARY_PATH: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: f64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    // PyTorch 2.11, float64:
    //   s = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    //   t = torch.tensor([[2.0, -1.0, 0.0], [1.0, 2.0, 3.0]]); y = torch.tensor([0, 2])
    //   kl = F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1),
    //                 reduction="batchmean", log_target=True) * 16
    //   print(repr((0.1 * F.cross_entropy(s, y) + 0.9 * kl).item()))
    let want = 1.358719979859999;
    assert!(
        (got - want).abs() <= 1e-6 + 1e-5 * want,
        "{got} vs PyTorch {want}"
    );
}

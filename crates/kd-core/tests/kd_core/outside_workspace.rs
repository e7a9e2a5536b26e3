//! kd-core from another workspace, as its README section promises: a throwaway crate outside
//! this repository depends on `kd-core` by path and on `kd-build` in its `build.rs`, builds
//! with only `LIBTORCH` set, and its binary starts without `LD_LIBRARY_PATH` and computes
//! PyTorch's Hinton loss.
//!
//! The crate's build shares `target/outside-workspace` between runs (the first build compiles
//! torch-sys, a few minutes), and uses the workspace's `Cargo.lock` offline, so it builds the
//! same dependency versions this workspace does.

use std::path::Path;
use std::process::Command;

/// The README's recipe, with `path` dependencies (a `git` dependency differs only in where
/// cargo fetches the same crates from).
fn manifest(root: &Path) -> String {
    kd_testkit::outside::manifest(root, "outside", &["kd-core"], &["tch = \"=0.24.0\""])
}

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
    let test = "a_crate_outside_the_workspace_builds_and_runs_without_ld_library_path";
    let root = kd_testkit::workspace_root(env!("CARGO_MANIFEST_DIR"));
    let Some(libtorch) = kd_testkit::outside::libtorch(test, &root) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("outside");
    let manifest = manifest(&root);
    let files = (manifest.as_str(), MAIN_RS);
    let bin = kd_testkit::outside::build(&root, &libtorch, &krate, files, "outside");
    let run = Command::new(bin)
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

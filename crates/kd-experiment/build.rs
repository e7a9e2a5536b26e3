//! Links libtorch (rpath) and records the git commit the binary was built from, for the
//! environment section of every run's report.

use std::process::Command;

fn main() {
    kd_build::link_libtorch();
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KD_GIT_COMMIT={commit}");
    // Rebuild the stamp when the checked-out commit moves.
    for path in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

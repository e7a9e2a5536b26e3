//! A throwaway crate outside the workspace, built as a user's would be: it names kd's crates
//! by path, links libtorch through kd-build in its `build.rs`, and builds offline with only
//! `LIBTORCH` set, using the workspace's `Cargo.lock` and toolchain (so the same dependency
//! versions). Builds share `target/outside-workspace` between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libtorch `cargo xtask setup` installed under `root` (`.libtorch`), which `test`
/// needs: skipped, or a failure under CI, without it ([`crate::require`]).
pub fn libtorch(test: &str, root: &Path) -> Option<PathBuf> {
    let dir = root.join(".libtorch");
    let found = dir.join("lib").is_dir().then_some(dir);
    crate::require(
        test,
        found,
        "no libtorch at .libtorch (run `cargo xtask setup`)",
    )
}

/// The `Cargo.toml` of a binary crate `name` that depends on the workspace crates `kd` (by
/// path under `root`), on `others` (crates.io lines such as `tch = "=0.24.0"`), and on
/// kd-build to build.
pub fn manifest(root: &Path, name: &str, kd: &[&str], others: &[&str]) -> String {
    let path = |krate: &str| root.join("crates").join(krate).display().to_string();
    let mut deps: Vec<String> = kd
        .iter()
        .map(|k| format!("{k} = {{ path = {:?} }}", path(k)))
        .collect();
    deps.extend(others.iter().map(|d| d.to_string()));
    format!(
        "[package]\nname = {name:?}\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{}\n\n[build-dependencies]\nkd-build = {{ path = {:?} }}\n\n[workspace]\n",
        deps.join("\n"),
        path("kd-build"),
    )
}

/// Writes the crate (`manifest`, `main_rs`, a `build.rs` of one line, the workspace's
/// `Cargo.lock` and `rust-toolchain.toml`) into `dir` and builds it against the libtorch in
/// `libtorch`; returns its binary `bin`. Panics with cargo's errors if it does not build.
pub fn build(
    root: &Path,
    libtorch: &Path,
    dir: &Path,
    (manifest, main_rs): (&str, &str),
    bin: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let build_rs = "fn main() {\n    kd_build::link_libtorch();\n}\n";
    std::fs::write(dir.join("build.rs"), build_rs).unwrap();
    std::fs::write(dir.join("src/main.rs"), main_rs).unwrap();
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(root.join(file), dir.join(file)).unwrap();
    }
    let target = root.join("target/outside-workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(dir)
        .env("LIBTORCH", libtorch.canonicalize().unwrap())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the outside crate does not build: {stderr}"
    );
    target.join("debug").join(bin)
}

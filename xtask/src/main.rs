//! Project tasks (the `cargo xtask` pattern): `cargo xtask <task>` from anywhere in the
//! workspace. xtask never links libtorch, so it builds before libtorch is installed.
//!
//! ```text
//! cargo xtask setup                         install PyTorch 2.11.0 (libtorch) into a venv
//! cargo xtask fetch-data [--dataset fashion-mnist|cifar10|cifar100] [--mirror URL]
//! cargo xtask fetch-weights vgg19 [--mirror URL]   ImageNet VGG19 → data/weights/vgg19.safetensors
//! cargo xtask run [-- kd-cli run args]      setup + fetch-data + kd-cli run configs/quickstart.toml
//! cargo xtask test                          setup + fetch-data + the whole test suite + the example
//! ```

mod cifar;
mod download;
mod fetch;
mod setup;
mod unpack;
mod weights;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <setup | fetch-data [--dataset fashion-mnist|cifar10|cifar100] [--mirror URL] | fetch-weights vgg19 [--mirror URL] | run [kd-cli run args] | test [cargo test args]>";

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The cargo that runs this task (`$CARGO`, set by `cargo run`), or `cargo` from `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` in the workspace root, failing if it does.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Value of `--flag VALUE` in `args`, if present.
fn flag(args: &[String], name: &str) -> Result<Option<String>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => match args.get(i + 1) {
            Some(v) => Ok(Some(v.clone())),
            None => bail!("{name}: expected a value"),
        },
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match task.as_str() {
        "setup" => setup::setup().map(|_| ()),
        "fetch-data" => {
            let dataset = flag(rest, "--dataset")?.unwrap_or_else(|| "fashion-mnist".into());
            let mirror = flag(rest, "--mirror")?.or_else(|| std::env::var("KD_MIRROR").ok());
            fetch::fetch_dataset(&dataset, mirror.as_deref(), &root().join("data")).map(|_| ())
        }
        "fetch-weights" => {
            let Some(name) = rest.first().filter(|a| !a.starts_with("--")) else {
                bail!("fetch-weights: expected a model name (vgg19)\n{USAGE}");
            };
            let spec = weights::spec(name)?;
            let mirror = flag(rest, "--mirror")?.or_else(|| std::env::var("KD_MIRROR").ok());
            setup::setup()?;
            weights::fetch_weights(
                &spec,
                mirror.as_deref(),
                &root().join("data").join("weights"),
                &setup::venv_python(),
            )
            .map(|_| ())
        }
        "run" => {
            setup::setup()?;
            fetch::fetch_dataset("fashion-mnist", None, &root().join("data"))?;
            let mut args = vec!["configs/quickstart.toml".to_string()];
            if !rest.is_empty() {
                args = rest.to_vec();
            }
            run_cmd(
                cargo()
                    .args(["run", "--release", "--package", "kd-cli", "--", "run"])
                    .args(args),
            )
        }
        "test" => {
            setup::setup()?;
            if let Err(e) = fetch::fetch_dataset("fashion-mnist", None, &root().join("data")) {
                eprintln!("xtask: Fashion-MNIST unavailable, tests that need it will skip: {e:#}");
            }
            run_cmd(cargo().args(["test", "--workspace"]).args(rest))?;
            // The library example must keep running, not only compiling.
            run_cmd(cargo().args([
                "run",
                "--quiet",
                "--package",
                "kd-train",
                "--example",
                "distill_own_model",
            ]))
        }
        other => bail!("unknown task {other:?}\n{USAGE}"),
    }
}

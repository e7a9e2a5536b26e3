//! Project tasks (the `cargo xtask` pattern): `cargo xtask <task>` from anywhere in the
//! workspace. xtask never links libtorch, so it builds before libtorch is installed. Every
//! task answers `--help` with its usage and refuses options it does not know.
//!
//! ```text
//! cargo xtask setup                         install PyTorch 2.11.0 (libtorch) into a venv
//! cargo xtask fetch-data [--dataset fashion-mnist|cifar10|cifar100] [--mirror URL]
//! cargo xtask fetch-weights vgg19 [--mirror URL]   ImageNet VGG19 → data/weights/vgg19.safetensors
//! cargo xtask run [kd-cli run args]         setup + fetch-data + kd-cli run configs/quickstart.toml
//! cargo xtask test [--numeric | --precision-guard] [-- cargo test args]   setup + fetch-data + the test suite
//! ```

mod args;
mod cifar;
mod download;
mod fetch;
mod precision_guard;
mod setup;
mod test_suite;
mod unpack;
mod weights;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use args::TaskSpec;

const USAGE: &str = "usage: cargo xtask <task> [options]   (cargo xtask <task> --help)

tasks:
  setup           install PyTorch 2.11.0 (libtorch) from PyPI into .venv
  fetch-data      download and verify a dataset into data/
  fetch-weights   download ImageNet weights and convert them to safetensors
  run             setup, fetch Fashion-MNIST, then kd-cli run configs/quickstart.toml
  test            setup, fetch Fashion-MNIST, then the whole test suite";

const SETUP: TaskSpec = TaskSpec {
    name: "setup",
    usage: "usage: cargo xtask setup

Installs torch==2.11.0 from PyPI into .venv (KD_VENV: another place; KD_PYTHON: the
interpreter that creates it) and links .libtorch to it for the build.",
    value_flags: &[],
    switches: &[],
    max_positional: 0,
};

const FETCH_DATA: TaskSpec = TaskSpec {
    name: "fetch-data",
    usage: "usage: cargo xtask fetch-data [--dataset NAME] [--mirror URL]

  --dataset NAME   fashion-mnist (default), cifar10 or cifar100
  --mirror URL     download from this base URL instead of the published host (or KD_MIRROR)

Checks the published checksums; Fashion-MNIST falls back to Debian's dataset-fashion-mnist
offline.",
    value_flags: &["--dataset", "--mirror"],
    switches: &[],
    max_positional: 0,
};

const FETCH_WEIGHTS: TaskSpec = TaskSpec {
    name: "fetch-weights",
    usage: "usage: cargo xtask fetch-weights vgg19 [--mirror URL]

Downloads torchvision's ImageNet VGG19 (vgg19-dcbb9e9d.pth), checks its SHA-256, and
converts it with the venv's PyTorch into data/weights/vgg19.safetensors.
  --mirror URL     download from this base URL instead of download.pytorch.org (or KD_MIRROR)",
    value_flags: &["--mirror"],
    switches: &[],
    max_positional: 1,
};

const RUN_USAGE: &str = "usage: cargo xtask run [CONFIG] [kd-cli run options]

Sets up libtorch, fetches Fashion-MNIST, builds kd-cli in release mode and runs
`kd-cli run configs/quickstart.toml` (or the given config and options, e.g.
`cargo xtask run configs/quickstart.toml --seed 3`; `kd-cli run --help` lists them).";

const TEST: TaskSpec = TaskSpec {
    name: "test",
    usage: "usage: cargo xtask test [--numeric | --precision-guard] [-- cargo test args]

Sets up libtorch, fetches Fashion-MNIST, runs `cargo test --workspace --no-fail-fast` and the
kd-train example, and ends with one line: passed, failed, skipped (a test whose asset is
missing; under CI=true that is a failure instead), ignored.
  --numeric   only the tests that compare numbers (losses and forwards vs PyTorch, export,
              cached vs live teacher, data parallel), e.g. under ATEN_CPU_CAPABILITY=avx2
  --precision-guard
              the tests whose runs use precision = \"auto\" (kd-cli's), again under each
              precision auto does not pick on this CPU: f32 where it picks bf16, and bf16
              emulated (ONEDNN_MAX_CPU_ISA=AVX512_CORE) where the CPU has AVX-512",
    value_flags: &[],
    switches: &["--numeric", "--precision-guard"],
    max_positional: 0,
};

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

/// The mirror: `--mirror`, else `KD_MIRROR`.
fn mirror(args: &args::TaskArgs) -> Option<String> {
    args.value("--mirror")
        .map(str::to_string)
        .or_else(|| std::env::var("KD_MIRROR").ok())
}

fn dispatch(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match task.as_str() {
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "setup" => match SETUP.parse(rest)? {
            Some(_) => setup::setup().map(|_| ()),
            None => Ok(()),
        },
        "fetch-data" => {
            let Some(a) = FETCH_DATA.parse(rest)? else {
                return Ok(());
            };
            let dataset = a.value("--dataset").unwrap_or("fashion-mnist");
            fetch::fetch_dataset(dataset, mirror(&a).as_deref(), &root().join("data")).map(|_| ())
        }
        "fetch-weights" => fetch_weights(rest),
        "run" => {
            if matches!(rest.first().map(String::as_str), Some("--help" | "-h")) {
                println!("{RUN_USAGE}");
                return Ok(());
            }
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
        "test" => test(rest),
        other => bail!("unknown task {other:?}\n{USAGE}"),
    }
}

/// `cargo xtask fetch-weights NAME [--mirror URL]`.
fn fetch_weights(rest: &[String]) -> Result<()> {
    let Some(a) = FETCH_WEIGHTS.parse(rest)? else {
        return Ok(());
    };
    let Some(name) = a.positional.first() else {
        bail!(
            "fetch-weights: expected a model name (vgg19)\n{}",
            FETCH_WEIGHTS.usage
        );
    };
    let spec = weights::spec(name)?;
    setup::setup()?;
    weights::fetch_weights(
        &spec,
        mirror(&a).as_deref(),
        &root().join("data").join("weights"),
        &setup::venv_python(),
    )
    .map(|_| ())
}

/// `cargo xtask test [--numeric | --precision-guard] [-- CARGO TEST ARGS]`.
fn test(rest: &[String]) -> Result<()> {
    let Some(a) = TEST.parse(rest)? else {
        return Ok(());
    };
    setup::setup()?;
    if let Err(e) = fetch::fetch_dataset("fashion-mnist", None, &root().join("data")) {
        if kd_testkit::under_ci() {
            return Err(e.context("CI=true: the tests need Fashion-MNIST"));
        }
        eprintln!("xtask: Fashion-MNIST unavailable, tests that need it will skip: {e:#}");
    }
    let suite = match (a.switch("--numeric"), a.switch("--precision-guard")) {
        (false, false) => test_suite::Suite::Whole,
        (true, false) => test_suite::Suite::Numeric,
        (false, true) => test_suite::Suite::PrecisionGuard,
        (true, true) => bail!(
            "test: --numeric and --precision-guard are separate suites: choose one\n{}",
            TEST.usage
        ),
    };
    test_suite::run(suite, &a.passthrough)
}

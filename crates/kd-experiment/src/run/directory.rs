//! The run directory: where a run writes (`--resume`'s directory, `--out`, or
//! `runs/<name>/seed-<seed>`), and its creation with `config.toml` and `train.log`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::observer::Observer;
use super::RunOverrides;
use crate::atomic::write_atomic;
use crate::config::RunConfig;

/// The run directory: `--resume`'s, `--out`, or `runs/<name>/seed-<seed>`.
pub fn run_dir(cfg: &RunConfig, overrides: &RunOverrides) -> Result<PathBuf> {
    Ok(match (&overrides.resume, &overrides.out) {
        (Some(dir), Some(out)) if dir != out => bail!(
            "--resume {} with --out {}: a resumed run continues in its own directory; drop --out",
            dir.display(),
            out.display()
        ),
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => PathBuf::from("runs")
            .join(&cfg.name)
            .join(format!("seed-{}", cfg.seed)),
    })
}

/// The run directory with its `config.toml` (`resolved`) and `train.log`, which `observer`
/// is told of; a new run in an old directory first removes the old run's checkpoints, which
/// must never be resumed.
pub(super) fn create_run_dir(
    out: &Path,
    resolved: &str,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the run directory", out.display()))?;
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
    observer.run_dir_ready(&out.join("train.log"), resume)?;
    let checkpoints = out.join("checkpoints");
    if !resume && checkpoints.exists() {
        std::fs::remove_dir_all(&checkpoints)
            .with_context(|| format!("{}: cannot remove", checkpoints.display()))?;
    }
    Ok(())
}

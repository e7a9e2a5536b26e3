//! `kd-cli tune CONFIG`: which distillation, which settings — and does it pay? Successive
//! halving (Jamieson & Talwalkar 2016; Li et al. 2018, as Optuna's
//! `SuccessiveHalvingPruner` and Ray Tune's ASHA run it) over the configurations of a
//! `[tune]` section, each trained at every seed, selected on validation; the test set read
//! once, for the finalists.
//!
//! Per seed the teacher trains once (or is loaded) and its logits are cached once; every
//! configuration of the seed reads them, and the scratch student of the seed trains once.
//! Every student's schedule is the last rung's epochs; a configuration that goes on resumes
//! its own checkpoint. The modules:
//!
//! - [`space`]: the `[tune]` section and its configurations; [`halving`]: rung sizes and
//!   rankings; [`paired`]: paired differences over seeds;
//! - [`schedule`]: the units of work, the rungs' members and the shards' shares;
//!   [`store`]: the tune's folder; `runner.rs`: one process's share; `progress.rs`;
//! - [`leaderboard`] (with `table.rs`: Markdown) and [`pareto`]: the report.

mod fusion;
pub mod halving;
pub mod leaderboard;
pub mod paired;
pub mod pareto;
mod progress;
mod runner;
pub mod schedule;
pub mod space;
pub mod store;
mod table;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::atomic::write_atomic;
use leaderboard::{leaderboard, Leaderboard};
use runner::Runner;
use schedule::Shard;
use space::Tune;
use store::{Tested, TuneDir};

/// A commented `[tune]` section with every key (`kd-cli config default --tune`): appended to
/// [`crate::config::DEFAULT_CONFIG`], a valid tune.
pub const DEFAULT_TUNE: &str = include_str!("default_tune.toml");

/// How a tune runs in this process.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The tune's folder (`--out`; default `runs/<name>/tune`).
    pub out: Option<PathBuf>,
    /// This process's share (`--shard i/n`).
    pub shard: Shard,
    /// Continue the tune in the folder (`--resume`).
    pub resume: bool,
    /// Threads of this process (`--threads`), over the config's.
    pub threads: Option<usize>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self {
            out: None,
            shard: Shard::ALL,
            resume: false,
            threads: None,
        }
    }
}

/// The tune's folder: `--out`, or `runs/<name>/tune`.
pub fn tune_dir(tune: &Tune, options: &TuneOptions) -> TuneDir {
    let default = || PathBuf::from("runs").join(&tune.base.name).join("tune");
    TuneDir::new(options.out.clone().unwrap_or_else(default))
}

/// Checks every configuration against the data and the models (each planned at the first
/// seed), then makes `dir` the tune's folder — before anything trains.
pub fn prepare(tune: &Tune, dir: &TuneDir, options: &TuneOptions) -> Result<()> {
    if dir.holds_a_tune() {
        dir.check_same(tune)?;
    }
    let runner = Runner::new(tune, dir, options.threads);
    let seed = tune.section.seeds[0];
    let seed_plan = runner.seed_plan(seed)?;
    for (trial, t) in tune.trials.iter().enumerate() {
        let unit = store::Unit::Trial {
            rung: 0,
            trial,
            seed,
        };
        runner
            .unit_plan(&seed_plan, unit)
            .with_context(|| format!("{}: the configuration {}", tune.path.display(), t.label()))?;
    }
    // A shard joins the folder its tune's other shards may have made already.
    dir.claim(tune, options.resume || options.shard.count > 1)
}

/// Runs this process's share of the tune in `dir` (made by [`prepare`]); once the whole tune
/// is done, writes and returns its report.
pub fn run_share(tune: &Tune, dir: &TuneDir, options: &TuneOptions) -> Result<Option<Leaderboard>> {
    Runner::new(tune, dir, options.threads).run_share(options.shard)?;
    let board = leaderboard(tune, dir)?;
    if !board.complete {
        tracing::info!(
            "this shard's work is done; `kd-cli tune --report {}` once the other shards' is",
            dir.root().display()
        );
        return Ok(None);
    }
    write_report(tune, dir, &board)?;
    Ok(Some(board))
}

/// The report of the tune in `dir` as it stands (finished or not): `tune.md`, `tune.json`
/// and, when a finalist has test results, `pareto.png` (skipped with a warning without a
/// font). Its own tune file is read from the folder.
pub fn report(dir: &TuneDir) -> Result<Leaderboard> {
    let tune = dir.stored_tune()?;
    let board = leaderboard(&tune, dir)?;
    write_report(&tune, dir, &board)?;
    Ok(board)
}

/// Writes `board` into `dir`.
fn write_report(tune: &Tune, dir: &TuneDir, board: &Leaderboard) -> Result<()> {
    let root = dir.root();
    write_atomic(&root.join("tune.md"), board.markdown().as_bytes())?;
    write_atomic(
        &root.join("tune.json"),
        serde_json::to_string_pretty(board)?.as_bytes(),
    )?;
    let teacher: Vec<Tested> = tune
        .section
        .seeds
        .iter()
        .filter_map(|&s| dir.teacher(s).ok().flatten())
        .map(|r| Tested::of(&r))
        .collect();
    if board.rows.iter().any(|r| !r.tested.is_empty()) {
        let path = root.join("pareto.png");
        let drawn =
            crate::atomic::write_atomic_with(&path, |tmp| pareto::pareto(board, &teacher, tmp));
        if let Err(e) = drawn {
            tracing::warn!("{}: not drawn: {e:#}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositorys_tunes_are_valid_tunes() {
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut tunes = 0;
        for entry in std::fs::read_dir(&configs).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with("-tune.toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                Tune::parse(&text, &path).unwrap_or_else(|e| panic!("{e:#}"));
                tunes += 1;
            }
        }
        assert!(tunes >= 3, "{tunes} tunes in {}", configs.display());
    }

    #[test]
    fn the_default_tune_section_is_a_valid_tune_and_documented() {
        let text = format!("{}\n{DEFAULT_TUNE}", crate::config::DEFAULT_CONFIG);
        let tune = Tune::parse(&text, std::path::Path::new("default")).unwrap();
        assert_eq!(tune.trials.len(), 4);
        assert_eq!(tune.section.rungs, [5, 15, 40]);
        let doc =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let doc = std::fs::read_to_string(doc).unwrap();
        assert!(
            doc.contains(&format!("```toml\n{DEFAULT_TUNE}```")),
            "docs/configuration.md is out of date: paste `kd-cli config default --tune`'s [tune] section into its block"
        );
    }
}

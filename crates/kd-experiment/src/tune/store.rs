//! A tune's folder — the one place every worker and shard of a tune writes, and all that
//! `--resume` and `--report` read:
//!
//! ```text
//! tune.toml                          the tune file as given; tune.id: what identifies it
//! seed-<s>/                          the seed's teacher: teacher.safetensors, teacher.json
//!                                    (its report), checkpoints/teacher
//! seed-<s>/scratch/                  the scratch student: checkpoints, scratch.safetensors
//! trials/<i>/seed-<s>/               configuration i's distilled student at seed s
//! results/rung-<r>/trial-<i>-seed-<s>.json   one unit of work done (a rung of a trial)
//! results/scratch/seed-<s>.json      the scratch student, trained and tested
//! tune.md, tune.json, pareto.png     the report
//! ```
//!
//! Every file is written to a temporary file and renamed, so a reader sees a result whole
//! or not at all; a result file is the only sign a unit is done.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::space::Tune;
use crate::atomic::write_atomic;
use crate::report::ModelReport;

/// A finished model's test results (finalists and scratch students only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tested {
    /// Float32 test accuracy of the saved weights, in [0, 1].
    pub accuracy: f64,
    /// Its test loss (cross-entropy).
    pub loss: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// The model file's size.
    pub file_bytes: u64,
    /// Batch-1 latency on one thread, median, in milliseconds (timed, so it varies).
    pub latency_ms: Option<f64>,
}

impl Tested {
    /// The test results of a finished model's report.
    pub fn of(report: &ModelReport) -> Self {
        Self {
            accuracy: report.test_accuracy,
            loss: report.test_loss,
            parameters: report.parameters,
            file_bytes: report.file_bytes,
            latency_ms: report.latency.as_ref().map(|l| l.one_thread.median_ms),
        }
    }
}

/// One unit of a tune done: a trial trained through a rung at a seed, or a scratch student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The configuration (`None`: the scratch student).
    pub trial: Option<usize>,
    /// The seed.
    pub seed: u64,
    /// Epochs trained by the end of the unit (fewer than the rung's after an early stop).
    pub epochs: usize,
    /// The best validation accuracy of those epochs, in [0, 1] (`None` when it failed).
    pub val_accuracy: Option<f64>,
    /// Whether the student's fit is over (its last rung, or an early stop).
    pub complete: bool,
    /// Why it failed (a non-finite loss, out of memory), if it did.
    pub failed: Option<String>,
    /// Training seconds so far (timed: not part of the leaderboard).
    pub seconds: f64,
    /// Test results, for a finalist's last rung and a scratch student.
    pub tested: Option<Tested>,
}

/// A unit of work: what it trains and where its result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// Configuration `trial` at `seed` through rung `rung` (0-based).
    Trial {
        /// The rung.
        rung: usize,
        /// The configuration's index.
        trial: usize,
        /// The seed.
        seed: u64,
    },
    /// The scratch student of `seed`.
    Scratch {
        /// The seed.
        seed: u64,
    },
}

impl Unit {
    /// The seed it trains at.
    pub fn seed(self) -> u64 {
        match self {
            Self::Trial { seed, .. } | Self::Scratch { seed } => seed,
        }
    }
}

/// A tune's folder.
#[derive(Debug, Clone)]
pub struct TuneDir {
    root: PathBuf,
}

impl TuneDir {
    /// The folder at `root` (nothing is read or written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a tune has started here.
    pub fn holds_a_tune(&self) -> bool {
        self.root.join("tune.id").exists()
    }

    /// Makes the folder this tune's: a new folder gets the tune (as one file) and its identity; a
    /// folder of a tune is accepted when it is this tune's and `resume` (or a shard's
    /// `join`) says to continue it. Errors name the folder and what to do.
    pub fn claim(&self, tune: &Tune, resume: bool) -> Result<()> {
        let id = tune.fingerprint()?;
        if self.holds_a_tune() {
            self.check_same(tune)?;
            if !resume {
                bail!(
                    "{}: holds this tune already; --resume continues it, --out names another folder",
                    self.root.display()
                );
            }
            return Ok(());
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("{}: cannot create the tune folder", self.root.display()))?;
        write_atomic(&self.root.join("tune.toml"), tune.stored_text()?.as_bytes())?;
        write_atomic(&self.root.join("tune.id"), id.as_bytes())
    }

    /// An error unless the folder holds a tune, and `tune`'s.
    pub fn check_same(&self, tune: &Tune) -> Result<()> {
        let stored = self.identity()?;
        if stored != tune.fingerprint()? {
            bail!(
                "{}: holds another tune (its tune.toml differs from {} in the base config, space, seeds, rungs or eta)",
                self.root.display(),
                tune.path.display()
            );
        }
        Ok(())
    }

    fn identity(&self) -> Result<String> {
        let path = self.root.join("tune.id");
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a tune folder (no tune.id; `kd-cli tune CONFIG` makes one)",
                self.root.display()
            )
        })
    }

    /// The tune stored in the folder (its `tune.toml`), checked against its identity.
    pub fn stored_tune(&self) -> Result<Tune> {
        let id = self.identity()?;
        let path = self.root.join("tune.toml");
        // Its space was accepted when the tune started (with `--yes` if it had to be).
        let tune = Tune::parse_allowing(&super::space::read(&path)?, &path, true)?;
        if tune.fingerprint()? != id {
            bail!(
                "{}: tune.toml does not match tune.id (edited after the tune started?)",
                self.root.display()
            );
        }
        Ok(tune)
    }

    /// The seed's directory: its teacher.
    pub fn seed_dir(&self, seed: u64) -> PathBuf {
        self.root.join(format!("seed-{seed}"))
    }

    /// Where a unit's student trains.
    pub fn unit_dir(&self, unit: Unit) -> PathBuf {
        match unit {
            Unit::Trial { trial, seed, .. } => self
                .root
                .join("trials")
                .join(trial.to_string())
                .join(format!("seed-{seed}")),
            Unit::Scratch { seed } => self.seed_dir(seed).join("scratch"),
        }
    }

    fn result_path(&self, unit: Unit) -> PathBuf {
        let results = self.root.join("results");
        match unit {
            Unit::Trial { rung, trial, seed } => results
                .join(format!("rung-{}", rung + 1))
                .join(format!("trial-{trial}-seed-{seed}.json")),
            Unit::Scratch { seed } => results.join("scratch").join(format!("seed-{seed}.json")),
        }
    }

    /// A unit's result, if it is done.
    pub fn result(&self, unit: Unit) -> Result<Option<UnitResult>> {
        read_json(&self.result_path(unit))
    }

    /// Records a unit as done.
    pub fn save_result(&self, unit: Unit, result: &UnitResult) -> Result<()> {
        write_json(&self.result_path(unit), result)
    }

    /// The seed's teacher report, once its teacher is trained and saved.
    pub fn teacher(&self, seed: u64) -> Result<Option<ModelReport>> {
        read_json(&self.seed_dir(seed).join("teacher.json"))
    }

    /// Records the seed's teacher as trained and saved.
    pub fn save_teacher(&self, seed: u64, report: &ModelReport) -> Result<()> {
        write_json(&self.seed_dir(seed).join("teacher.json"), report)
    }
}

/// `path` parsed as JSON, or `None` when there is no such file.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{}: not a tune result (corrupt?)", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

/// Writes `value` as JSON to `path` (atomically), creating its folder.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

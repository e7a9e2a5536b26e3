//! `kd-cli tune CONFIG`: successive halving over the `[tune]` section's configurations
//! (kd-experiment's `tune`), as one process, as `tune.workers` local worker processes with
//! the threads divided between them, or as one shard of several (`--shard i/n`, e.g. a
//! Slurm array task) writing to a shared folder; `--report DIR` merges what is there.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use kd_experiment::tune::schedule::Shard;
use kd_experiment::tune::space::{read, Tune};
use kd_experiment::tune::store::TuneDir;
use kd_experiment::tune::{self, TuneOptions};

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The tune file: a run config with a `[tune]` section (`kd-cli config default --tune`).
    #[arg(required_unless_present = "report")]
    config: Option<PathBuf>,
    /// The tune's folder (default: runs/<name>/tune).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run shard I of N (counting from 1) of the tune, all shards writing to one --out.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Continue the tune in the folder: finished trials are kept, running ones resume.
    #[arg(long)]
    resume: bool,
    /// Threads of this process, divided between its workers (default: the config's, or all).
    #[arg(long)]
    threads: Option<usize>,
    /// Write and print the report of the tune in DIR as it stands, merging every shard's
    /// results (with CONFIG: checked to be that tune's folder).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Run a space of more configurations than `tune.max_trials`.
    #[arg(long)]
    yes: bool,
    /// One worker of a parent `kd-cli tune` (set by it).
    #[arg(long, hide = true)]
    worker: bool,
}

impl TuneArgs {
    pub fn run(self) -> Result<()> {
        if let Some(dir) = &self.report {
            let dir = TuneDir::new(dir);
            if let Some(config) = &self.config {
                dir.check_same(&Tune::load(config)?)?;
            }
            print!("{}", tune::report(&dir)?.markdown());
            return Ok(());
        }
        let config = self.config.clone().context("a tune file is needed")?;
        let text = read(&config)?;
        let tune = Tune::parse_allowing(&text, &config, self.yes)?;
        let shard = match &self.shard {
            Some(s) => Shard::parse(s)?,
            None => Shard::ALL,
        };
        let options = TuneOptions {
            out: self.out.clone(),
            shard,
            resume: self.resume,
            threads: self.threads,
        };
        let dir = tune::tune_dir(&tune, &options);
        tune::prepare(&tune, &dir, &options)?;
        let workers = tune.section.workers;
        let board = if workers > 1 && !self.worker {
            self.run_workers(&tune, &dir, shard, workers)?;
            let board = tune::report(&dir)?;
            board.complete.then_some(board)
        } else {
            tune::run_share(&tune, &dir, &options)?
        };
        if let Some(board) = board {
            print!("{}", board.markdown());
            eprintln!("report: {}", dir.root().join("tune.md").display());
        }
        Ok(())
    }

    /// Runs `workers` worker processes, each a shard of this shard with its share of the
    /// threads; fails naming the first that failed.
    fn run_workers(&self, tune: &Tune, dir: &TuneDir, shard: Shard, workers: usize) -> Result<()> {
        let config = self.config.as_ref().expect("checked by the caller");
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match self.threads.unwrap_or(tune.base.threads) {
            0 => available,
            n => n,
        };
        let each = (threads / workers).max(1);
        tracing::info!("{workers} workers, {each} threads each");
        let exe = std::env::current_exe().context("cannot find the kd-cli executable")?;
        let mut children = Vec::with_capacity(workers);
        for w in 0..workers {
            let s = shard.worker(w, workers);
            let child = Command::new(&exe)
                .arg("tune")
                .arg(config)
                .arg("--out")
                .arg(dir.root())
                .args(["--shard", &format!("{}/{}", s.index + 1, s.count)])
                .args(["--threads", &each.to_string(), "--resume", "--worker"])
                .args(self.yes.then_some("--yes"))
                .spawn()
                .with_context(|| format!("cannot start worker {}", w + 1))?;
            children.push(child);
        }
        let mut failed = None;
        for (w, mut child) in children.into_iter().enumerate() {
            let status = child.wait().context("cannot wait for a worker")?;
            if !status.success() && failed.is_none() {
                failed = Some((w + 1, status));
            }
        }
        if let Some((w, status)) = failed {
            bail!("worker {w} of {workers} failed ({status}); --resume continues the tune");
        }
        Ok(())
    }
}

#![warn(missing_docs)]
//! The kd experiment as a library: everything `kd-cli` does, callable from a program.
//!
//! The experiment is the seed notebook's: train (or load) a teacher, distill a student from
//! it, train the same student from the same initial weights without the teacher as the
//! baseline, test all three and write a run directory with a report. A program runs it in a
//! few lines:
//!
//! ```no_run
//! use std::path::Path;
//! use kd_experiment::run::{run, RunOverrides};
//!
//! fn main() -> anyhow::Result<()> {
//!     let config = Path::new("configs/quickstart.toml");
//!     let overrides = RunOverrides { seed: Some(7), ..Default::default() };
//!     let report = run(config, &overrides, &mut kd_train::NoProgress)?;
//!     print!("{}", report.table());
//!     Ok(())
//! }
//! ```
//!
//! The modules, one idea each:
//! - the experiment: [`config`] (the TOML schema, defaults, `--set` overrides) with
//!   [`distill_config`], [`run`] (its phases: prepare, teacher, logits, students,
//!   outputs), [`resume`], [`run_log`] (metrics.csv, metrics.jsonl, events), [`report`],
//!   [`plots`], [`oom`];
//! - what comes after a run: [`compare`] (paired statistics over seeds, with
//!   [`student_t`]), [`eval`] and [`predict`] (in the precision [`eval_precision`] picks;
//!   a TorchScript teacher through its run config: [`eval_torchscript`]),
//!   [`export`] and [`export_onnx`] (TorchScript, ONNX float and int8), [`onnx_model`],
//!   [`saved_model`] (a model file opened without its config);
//! - speed and health: [`latency`], [`bench`], [`bench_latency`], [`bench_population`], [`doctor`], [`env`];
//! - before a run: [`check`] and [`summary`];
//! - a search: [`tune`] (`kd-cli tune`: successive halving over distillation settings,
//!   the teacher paid once per seed, paired statistics for the finalists);
//! - [`seeds`]: every random stream, derived from the run's seed in one table;
//! - [`atomic`]: every file written to a temporary file and renamed.

pub mod atomic;
pub mod bench;
pub mod bench_latency;
pub mod bench_population;
pub mod check;
pub mod compare;
pub mod config;
pub mod distill_config;
pub mod doctor;
pub mod env;
pub mod eval;
pub mod eval_precision;
pub mod eval_torchscript;
pub mod export;
pub mod export_onnx;
pub mod latency;
pub mod logits_file;
pub mod onnx_model;
pub mod oom;
pub mod outside_teacher;
pub mod plots;
pub mod predict;
pub mod report;
pub mod resolved;
pub mod resume;
pub mod run;
pub mod run_log;
pub mod saved_model;
pub mod seeds;
pub mod student_t;
pub mod summary;
pub mod teach;
pub mod teacher_card;
pub mod tune;

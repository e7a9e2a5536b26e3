//! The library behind the `kd-cli` binary: one module per command (`run`, `eval`, `predict`,
//! `export`, `bench`, `summary`, `compare`, `config`) and what they share (run-directory
//! logs, reports, plots, atomic writes). `src/main.rs` is only the command-line parser; the
//! modules are public so that fuzz targets (`fuzz/`) and tests reach the config loader and
//! readers directly.

pub mod atomic;
pub mod bench;
pub mod bench_latency;
pub mod check;
pub mod compare;
pub mod config;
pub mod distill_config;
pub mod doctor;
pub mod env;
pub mod eval;
pub mod eval_precision;
pub mod export;
pub mod export_onnx;
pub mod latency;
pub mod launch;
pub mod logging;
pub mod onnx_model;
pub mod oom;
pub mod plots;
pub mod predict;
pub mod progress;
pub mod report;
pub mod resume;
pub mod run;
pub mod run_log;
pub mod saved_model;
pub mod student_t;
pub mod summary;

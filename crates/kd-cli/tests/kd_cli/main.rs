//! kd-cli's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_cli -- MODULE::` runs one of them.

mod common;

mod bad_input;
mod bridged_teacher;
mod cli;
mod distributed;
mod doctor;
mod first_hour;
mod fuzz_corpus;
mod image_folder;
mod onnx_export;
mod population_bench;
mod resource_faults;
mod resume;
mod seed_pipeline;
mod simkd;
mod teach;
mod transfer_set;
mod tune;

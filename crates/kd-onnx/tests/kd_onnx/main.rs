//! kd-onnx's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_onnx -- MODULE::` runs one of them.

mod export;
mod teacher;

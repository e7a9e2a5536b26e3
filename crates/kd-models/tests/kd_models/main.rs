//! kd-models's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_models -- MODULE::` runs one of them.

mod architectures;
mod atomic_write;
mod class_map;
mod ensemble;
mod fuzz_corpus;
mod population;
mod resnets;
mod simkd;
mod vgg;

//! kd-data's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_data -- MODULE::` runs one of them.

mod cifar_files;
mod fashion_mnist;
mod fuzz_corpus;
mod idx_files;
mod image_folder;
mod loader;

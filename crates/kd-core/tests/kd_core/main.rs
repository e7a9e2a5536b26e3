//! kd-core's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_core -- MODULE::` runs one of them.

mod contrastive;
mod distiller;
mod feature_losses;
mod keras_kd;
mod loss_zoo;
mod outside_workspace;
mod relation_losses;
mod unlabeled_rows;

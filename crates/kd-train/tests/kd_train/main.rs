//! kd-train's integration tests, built as one test binary (one link against libtorch
//! instead of one per file): each module below is one file of tests, and
//! `cargo test --test kd_train -- MODULE::` runs one of them.

mod common;

mod graphed;
mod learner;
mod nonfinite;
mod outside_student;
mod population;
mod resume;
mod resume_methods;
mod script_student;
mod trainer;

//! Errors of the training layer.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// What can go wrong while configuring or running training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        key: String,
        expected: String,
        got: String,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("training diverged in {phase}, epoch {epoch}: the loss is {loss}")]
    Diverged {
        phase: String,
        epoch: usize,
        loss: f64,
    },
    #[error("{phase}: non-finite {what} at step {step} (epoch {epoch}, batch {batch}); training stopped before the step changed the weights; {checkpoint} (set on_nonfinite = \"skip_batch\" to skip such batches instead)")]
    NonFinite {
        phase: String,
        what: String,
        step: usize,
        epoch: usize,
        batch: usize,
        /// The last good checkpoint, in words.
        checkpoint: String,
    },
    #[error("data parallelism: {0} (did another rank fail or stop?)")]
    Distributed(String),
    #[error("optimizer: {0}")]
    Optimizer(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

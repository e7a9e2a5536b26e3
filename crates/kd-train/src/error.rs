//! Errors of the training layer. A variant that stems from another error keeps it, typed,
//! as its `cause` and says it in its message (so every way of printing the error says why
//! once, as kd-models' errors do).

use std::path::PathBuf;

pub use kd_sys::dist::DistError;

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
    #[error("{}: cannot write: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
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
        /// The loss, or the first parameter whose gradient is not finite.
        what: String,
        step: usize,
        epoch: usize,
        batch: usize,
        /// The last good checkpoint, in words.
        checkpoint: String,
    },
    #[error("{message}")]
    Graph { message: String },
    #[error("data parallelism: {cause} (did another rank fail or stop?)")]
    Distributed { cause: DistError },
    #[error("data parallelism: {phase}: rank {rank} resumes at {mine}, rank 0 at {rank0}: every rank needs the same checkpoints (a shared run directory)")]
    RanksDisagree {
        phase: String,
        rank: usize,
        mine: ResumePoint,
        rank0: ResumePoint,
    },
    #[error("data parallelism: {images} images for {ranks} data-parallel ranks: every rank needs at least one")]
    TooFewImages { images: usize, ranks: usize },
    #[error("optimizer: {cause}")]
    Optimizer { cause: kd_sys::AdamError },
    #[error("checkpoint {}: {cause}", path.display())]
    Checkpoint {
        path: PathBuf,
        cause: Box<CheckpointError>,
    },
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

impl From<DistError> for TrainError {
    fn from(cause: DistError) -> Self {
        Self::Distributed { cause }
    }
}

/// Where a fit stands, as ranks compare it before resuming together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumePoint {
    pub epoch: usize,
    pub step: usize,
    pub complete: bool,
}

impl std::fmt::Display for ResumePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}, step {} (complete: {})",
            self.epoch, self.step, self.complete
        )
    }
}

/// Why a checkpoint cannot be written, read or resumed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{cause}")]
    File { cause: kd_models::ModelError },
    /// The header lacks `missing`, the key of the resume state.
    #[error("not a kd checkpoint (no {missing} in its header)")]
    NotACheckpoint { missing: &'static str },
    #[error("unreadable state: {cause}")]
    State { cause: serde_json::Error },
    #[error("checkpoint format {found}, this kd reads format {expected}: it was written by another version of kd; start the run again without --resume")]
    Format { found: u32, expected: u32 },
    #[error("written by another configuration (phase {found_phase:?}, fingerprint {found_fingerprint}), not this run's (phase {phase:?}, fingerprint {fingerprint})")]
    OtherRun {
        found_phase: String,
        found_fingerprint: String,
        phase: String,
        fingerprint: String,
    },
    #[error("no {name}")]
    Missing { name: String },
    /// The saved weights do not fit the model (kd-models names the tensor).
    #[error("model: {mismatch}")]
    Weights { mismatch: String },
    #[error("{name} has shape {found:?}, the model's {expected:?}")]
    Shape {
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("the {name} callback's state: {cause}")]
    CallbackState {
        name: String,
        cause: serde_json::Error,
    },
    #[error("{cause}")]
    Generator { cause: kd_sys::RngError },
}

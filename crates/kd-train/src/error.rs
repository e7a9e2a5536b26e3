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
    /// A setting out of its range, refused before anything trains.
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        /// The key or setting, e.g. `student.train.lr`.
        key: String,
        /// What it accepts.
        expected: String,
        /// The value given.
        got: String,
    },
    /// A file could not be written.
    #[error("{}: cannot write: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// An epoch's training or validation loss is not finite.
    #[error("training diverged in {phase}, epoch {epoch}: the loss is {loss}")]
    Diverged {
        /// The fit's name (`teacher`, `distilled`, ...).
        phase: String,
        /// The epoch, from 1.
        epoch: usize,
        /// The loss (NaN where no image counted).
        loss: f64,
    },
    #[error("{phase}: non-finite {what} at step {step} (epoch {epoch}, batch {batch}); training stopped before the step changed the weights; {checkpoint} (set on_nonfinite = \"skip_batch\" to skip such batches instead)")]
    /// A step's loss or gradient is not finite and the policy is to stop.
    NonFinite {
        /// The fit's name.
        phase: String,
        /// The loss, or the first parameter whose gradient is not finite.
        what: String,
        /// The optimizer step (from 1).
        step: usize,
        /// The epoch (from 1).
        epoch: usize,
        /// The batch within the epoch (from 1).
        batch: usize,
        /// The last good checkpoint, in words.
        checkpoint: String,
    },
    /// Capturing or replaying a CUDA graph failed.
    #[error("{message}")]
    Graph {
        /// libtorch's message.
        message: String,
    },
    /// A collective of data parallelism failed.
    #[error("data parallelism: {cause} (did another rank fail or stop?)")]
    Distributed {
        /// The process group's error.
        cause: DistError,
    },
    /// Ranks would resume from different checkpoints.
    #[error("data parallelism: {phase}: rank {rank} resumes at {mine}, rank 0 at {rank0}: every rank needs the same checkpoints (a shared run directory)")]
    RanksDisagree {
        /// The fit's name.
        phase: String,
        /// This rank.
        rank: usize,
        /// Where this rank would resume.
        mine: ResumePoint,
        /// Where rank 0 would.
        rank0: ResumePoint,
    },
    /// A set with fewer images than ranks, which cannot be sharded.
    #[error("data parallelism: {images} images for {ranks} data-parallel ranks: every rank needs at least one")]
    TooFewImages {
        /// Images in the set.
        images: usize,
        /// Ranks of the process group.
        ranks: usize,
    },
    /// Adam's step failed in libtorch.
    #[error("optimizer: {cause}")]
    Optimizer {
        /// libtorch's error.
        cause: kd_sys::AdamError,
    },
    /// A checkpoint could not be written, read or resumed.
    #[error("checkpoint {}: {cause}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        cause: Box<CheckpointError>,
    },
    /// A tensor operation failed in libtorch.
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
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// Whether the fit is over.
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
    /// The safetensors file itself (missing, corrupt, unwritable).
    #[error("{cause}")]
    File {
        /// The model layer's error, naming the file.
        cause: kd_models::ModelError,
    },
    /// The header lacks `missing`, the key of the resume state.
    #[error("not a kd checkpoint (no {missing} in its header)")]
    NotACheckpoint {
        /// The header key.
        missing: &'static str,
    },
    /// The resume state in the header is not valid JSON of its layout.
    #[error("unreadable state: {cause}")]
    State {
        /// The JSON error.
        cause: serde_json::Error,
    },
    /// A checkpoint of another format version.
    #[error("checkpoint format {found}, this kd reads format {expected}: it was written by another version of kd; start the run again without --resume")]
    Format {
        /// The file's format version.
        found: u32,
        /// The version this kd reads and writes.
        expected: u32,
    },
    #[error("written by another configuration (phase {found_phase:?}, fingerprint {found_fingerprint}), not this run's (phase {phase:?}, fingerprint {fingerprint})")]
    /// A checkpoint of another fit or configuration.
    OtherRun {
        /// The checkpoint's fit.
        found_phase: String,
        /// The checkpoint's configuration fingerprint.
        found_fingerprint: String,
        /// This fit.
        phase: String,
        /// This configuration's fingerprint.
        fingerprint: String,
    },
    /// A tensor the state needs is not in the file.
    #[error("no {name}")]
    Missing {
        /// The tensor's name.
        name: String,
    },
    /// The saved weights do not fit the model (kd-models names the tensor).
    #[error("model: {mismatch}")]
    Weights {
        /// What does not fit.
        mismatch: String,
    },
    /// An optimizer tensor of another shape than the parameter's.
    #[error("{name} has shape {found:?}, the model's {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        found: Vec<i64>,
        /// The shape the model needs.
        expected: Vec<i64>,
    },
    /// A callback's saved state does not load.
    #[error("the {name} callback's state: {cause}")]
    CallbackState {
        /// The callback's name.
        name: String,
        /// The JSON error.
        cause: serde_json::Error,
    },
    /// A random generator's saved state does not load.
    #[error("{cause}")]
    Generator {
        /// libtorch's error.
        cause: kd_sys::RngError,
    },
}

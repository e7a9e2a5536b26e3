//! Errors of the model layer.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// What can go wrong while configuring, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A setting out of its range.
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        /// The key or setting, e.g. `student.model.blocks`.
        key: String,
        /// What it accepts.
        expected: String,
        /// The value given.
        got: String,
    },
    /// libtorch could not read or write a weights file.
    #[error("{}: {source}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// A file that is not the model file expected (another architecture, not TorchScript).
    #[error("{}: {detail}", path.display())]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A file that is not safetensors.
    #[error("{}: not a valid safetensors file: {cause}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The safetensors parser's error.
        cause: safetensors::SafeTensorError,
    },
    /// A tensor of a safetensors file that libtorch cannot take.
    #[error("{}: tensor {name:?} cannot be read: {cause}", path.display())]
    TensorData {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// libtorch's error.
        cause: tch::TchError,
    },
    /// A safetensors header whose `__metadata__` is not a map of strings.
    #[error("{}: __metadata__ is not a map of strings: {cause}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        cause: serde_json::Error,
    },
    /// Published weights that do not fit the architecture.
    #[error("{}: pretrained weights do not fit the model: {detail}", path.display())]
    Pretrained {
        /// The weights file.
        path: PathBuf,
        /// The first tensor that does not fit, and how.
        detail: String,
    },
    /// A mixed precision the device cannot compute in.
    #[error("precision {precision} is not available on {device:?}: {cause}")]
    Precision {
        /// `bf16` or `f16`.
        precision: &'static str,
        /// The device.
        device: tch::Device,
        /// Why.
        cause: PrecisionCause,
    },
    /// A file that cannot be read or written, and why (in the message, not as a chained
    /// source, so that every way of printing the error says why once).
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
}

/// Why a precision is not available on a device.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionCause {
    /// Entering libtorch's autocast failed.
    #[error("{0}")]
    Autocast(kd_sys::AutocastError),
    /// A convolution in the precision failed.
    #[error("libtorch has no lower-precision convolution there: {0}")]
    Convolution(tch::TchError),
    /// Autocast ran but computed in another type.
    #[error("autocast produced {produced:?}, not {wanted:?}")]
    WrongKind {
        /// The type the probe's output had.
        produced: tch::Kind,
        /// The type asked for.
        wanted: tch::Kind,
    },
}

/// Shorthand for an [`ModelError::InvalidConfig`].
pub(crate) fn invalid(key: &str, expected: &str, got: impl ToString) -> ModelError {
    ModelError::InvalidConfig {
        key: key.to_string(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

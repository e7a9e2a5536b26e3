//! Errors of the model layer.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// What can go wrong while configuring, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        key: String,
        expected: String,
        got: String,
    },
    #[error("{}: {source}", path.display())]
    Weights {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    #[error("{}: {detail}", path.display())]
    ModelFile { path: PathBuf, detail: String },
    #[error("{}: not a valid safetensors file: {cause}", path.display())]
    Safetensors {
        path: PathBuf,
        cause: safetensors::SafeTensorError,
    },
    #[error("{}: tensor {name:?} cannot be read: {cause}", path.display())]
    TensorData {
        path: PathBuf,
        name: String,
        cause: tch::TchError,
    },
    #[error("{}: __metadata__ is not a map of strings: {cause}", path.display())]
    Metadata {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("{}: pretrained weights do not fit the model: {detail}", path.display())]
    Pretrained { path: PathBuf, detail: String },
    #[error("precision {precision} is not available on {device:?}: {cause}")]
    Precision {
        precision: &'static str,
        device: tch::Device,
        cause: PrecisionCause,
    },
    /// A file that cannot be read or written, and why (in the message, not as a chained
    /// source, so that every way of printing the error says why once).
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Why a precision is not available on a device.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionCause {
    #[error("{0}")]
    Autocast(kd_sys::AutocastError),
    #[error("libtorch has no lower-precision convolution there: {0}")]
    Convolution(tch::TchError),
    #[error("autocast produced {produced:?}, not {wanted:?}")]
    WrongKind {
        produced: tch::Kind,
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

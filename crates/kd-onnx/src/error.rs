//! Errors of ONNX export, quantization and the ONNX runtime.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, OnnxError>;

/// What can go wrong while exporting, quantizing or running an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model's weights lack a tensor its architecture needs (not a kd model of it).
    #[error("the {architecture} model has no tensor {name:?}")]
    MissingTensor { architecture: String, name: String },
    /// An architecture, operator or setting the exporter does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing a file.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A file that is not an ONNX model, or one the runtime cannot run.
    #[error("{}: {detail}", path.display())]
    Model { path: PathBuf, detail: String },
}

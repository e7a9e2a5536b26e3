//! Errors of the data layer: every variant names the file (or key) and what was expected.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// What can go wrong while reading or batching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an IDX file: {detail}", path.display())]
    BadMagic { path: PathBuf, detail: String },
    #[error("{}: truncated IDX file: expected {expected} data bytes after the header, found {found}", path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{}: expected {expected}, found {found}", path.display())]
    Shape {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: label {label} at index {index} is out of range (expected 0..{classes})", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        key: String,
        expected: String,
        got: String,
    },
    #[error("dataset directory {}: {detail}", dir.display())]
    MissingDataset { dir: PathBuf, detail: String },
    /// An image folder's layout is not usable (no classes, an empty class, classes that
    /// differ between splits).
    #[error("{}: {detail}", dir.display())]
    Folder { dir: PathBuf, detail: String },
    #[error("{}: {count} images do not decode (on_bad_image = \"skip\" skips them): {named}", dir.display())]
    BadImages {
        dir: PathBuf,
        count: usize,
        /// The first of them, each with why.
        named: String,
    },
}

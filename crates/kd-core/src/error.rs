//! Errors of the loss layer.

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

/// What can go wrong while configuring a loss.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        key: String,
        expected: String,
        got: String,
    },
}

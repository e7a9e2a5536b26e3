//! Errors of the loss layer.

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

/// What can go wrong while configuring a loss.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A config value out of its range.
    #[error("{key}: expected {expected}, got {got}")]
    InvalidConfig {
        /// Dotted config key, e.g. `distill.alpha`.
        key: String,
        /// What the key accepts.
        expected: String,
        /// The value given.
        got: String,
    },
}

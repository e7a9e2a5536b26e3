//! Model layer of kd: architectures built on tch, with parameter names that match PyTorch
//! state-dict keys.
//!
//! - [`student`]: the seed notebook's student family (3x3 conv blocks, max-pool, GAP, dense);
//! - [`cnn`]: a compact batch-normalized CNN teacher;
//! - [`model`]: [`Model`], a built architecture with safetensors save/load.

pub mod cnn;
pub mod error;
pub mod model;
pub mod student;

pub use cnn::CnnConfig;
pub use error::{ModelError, Result};
pub use model::{Model, ModelConfig};
pub use student::StudentConfig;

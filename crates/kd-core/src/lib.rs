//! Loss layer of kd: distillation losses as plain functions of tensors, importable into any
//! workspace that trains tch models. No optimizer and no training loop live here.

pub mod error;
pub mod loss;

pub use error::{CoreError, Result};
pub use loss::{DistillLoss, KerasKd, KerasKdConfig, LossParts};

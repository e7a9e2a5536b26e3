//! Loss layer of kd: distillation losses as plain functions of tensors, and the [`Distiller`]
//! that teaches a student with a frozen teacher's logits or features, importable into any workspace that trains
//! tch models. No optimizer and no training loop live here (see `kd-train`).
//!
//! ```
//! use kd_core::{DistillLoss, HintonKdConfig};
//! use tch::{Device, Kind, Tensor};
//!
//! let loss = HintonKdConfig { alpha: 0.5, temperature: 4.0 }.build("distill")?;
//! let student = Tensor::randn([8, 10], (Kind::Float, Device::Cpu)).set_requires_grad(true);
//! let teacher = Tensor::randn([8, 10], (Kind::Float, Device::Cpu));
//! let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
//! let parts = loss.loss(&student, &teacher, &labels);
//! parts.total.backward();
//! assert_eq!(student.grad().size(), [8, 10]);
//! # Ok::<(), kd_core::CoreError>(())
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod distiller;
pub mod error;
pub mod loss;
pub mod mixup;

pub use cache::{CacheConfig, CacheDtype, CacheMode, LogitCache};
pub use distiller::{Distiller, Examples, Split};
pub use error::{CoreError, Result};
pub use loss::{
    label_term, AttentionConfig, AttentionTransfer, Crd, CrdConfig, Dist, DistConfig, DistillLoss,
    Dkd, DkdConfig, FeatureLoss, FitNetsConfig, FitNetsHint, HintonKd, HintonKdConfig, KerasKd,
    KerasKdConfig, LogitStandardKd, LogitStandardKdConfig, LossConfig, LossParts, Mlkd, MlkdConfig,
    Rkd, RkdConfig, SimKd, SimKdConfig, NO_LABEL,
};

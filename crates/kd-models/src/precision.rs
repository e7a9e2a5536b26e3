//! Arithmetic precision of a model's forward pass: float32, or automatic mixed precision
//! (Micikevicius et al. 2018, "Mixed Precision Training") in bfloat16 or float16 through
//! libtorch's autocast ([`kd_sys::autocast`]). Parameters, gradients and optimizer state stay
//! float32; convolutions and matrix products run in the lower precision; a model's outputs
//! are returned in float32, so losses are always computed in float32.
//!
//! bfloat16 keeps float32's exponent range and trains without loss scaling; on CPUs with
//! AVX512-BF16 (and on GPUs) its convolutions run about twice as fast. float16 has a narrow
//! range: gradients can underflow, which is why PyTorch pairs it with a gradient scaler.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, PrecisionCause, Result};

/// Arithmetic precision of forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    F32,
    /// Autocast to bfloat16.
    Bf16,
    /// Autocast to float16.
    F16,
}

impl Precision {
    /// Every precision, in order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The config/CLI name: `f32`, `bf16` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    /// Parses a config/CLI name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The autocast kind, `None` for float32.
    pub fn autocast_kind(self) -> Option<Kind> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(Kind::BFloat16),
            Self::F16 => Some(Kind::Half),
        }
    }

    /// Runs `f` (a forward pass on `device`) in this precision and returns its output as
    /// float32.
    pub fn forward(self, device: Device, f: impl FnOnce() -> Tensor) -> Tensor {
        self.forward_many(device, || vec![f()]).remove(0)
    }

    /// [`Precision::forward`] for a pass with several outputs.
    pub fn forward_many(self, device: Device, f: impl FnOnce() -> Vec<Tensor>) -> Vec<Tensor> {
        let Some(kind) = self.autocast_kind() else {
            return f();
        };
        kd_sys::autocast(device, kind, f)
            .unwrap_or_else(|e| panic!("{e} (checked by Precision::check)"))
            .into_iter()
            .map(|t| t.to_kind(Kind::Float))
            .collect()
    }

    /// Checks that libtorch can autocast to this precision on `device` (it runs one small
    /// convolution there).
    pub fn check(self, device: Device) -> Result<()> {
        let Some(kind) = self.autocast_kind() else {
            return Ok(());
        };
        let x = Tensor::ones([1, 1, 3, 3], (Kind::Float, device));
        let error = |cause| ModelError::Precision {
            precision: self.name(),
            device,
            cause,
        };
        let produced = kd_sys::autocast(device, kind, || {
            x.f_conv2d(&x, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        })
        .map_err(|e| error(PrecisionCause::Autocast(e)))?
        .map_err(|e| error(PrecisionCause::Convolution(e)))?
        .kind();
        if produced != kind {
            return Err(error(PrecisionCause::WrongKind {
                produced,
                wanted: kind,
            }));
        }
        Ok(())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

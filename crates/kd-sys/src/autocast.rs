//! Automatic mixed precision as `torch.autocast(device_type, dtype)` does it: inside the
//! scope, libtorch runs the ops on its lower-precision list (convolutions, matrix products)
//! in `dtype`, keeps the ops on its float32 list (losses, reductions) in float32, and casts
//! float32 weights once per scope (the cast cache). Parameters and their gradients stay
//! float32. See PyTorch's "Automatic Mixed Precision" documentation
//! (`torch.amp`, CPU: bfloat16 and float16; CUDA: float16 and bfloat16).
//!
//! The state is thread-local, like PyTorch's: a scope covers the forward pass run on the
//! calling thread; the backward pass replays the casts autocast recorded.

use tch::{Device, Kind};

use crate::ffi::{self, device_type};

/// Autocast could not be entered or left.
#[derive(Debug, thiserror::Error)]
#[error("autocast to {kind:?} on {device:?}: {message}")]
pub struct AutocastError {
    /// The device whose autocast state was changed.
    pub device: Device,
    /// The requested lower precision.
    pub kind: Kind,
    /// libtorch's message.
    pub message: String,
}

/// `c10::ScalarType` codes of the kinds autocast accepts.
fn scalar_type(kind: Kind) -> Option<i8> {
    match kind {
        Kind::Half => Some(5),
        Kind::Float => Some(6),
        Kind::BFloat16 => Some(15),
        _ => None,
    }
}

/// Restores the previous autocast state when dropped, also during a panic.
struct Scope {
    device_type: i8,
    was_enabled: bool,
    previous_dtype: i8,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Err(message) =
            ffi::autocast_exit(self.device_type, self.was_enabled, self.previous_dtype)
        {
            tracing_free_warning(&message);
        }
    }
}

/// Leaving a scope only sets thread-local flags; a failure there cannot be returned from
/// `drop`, so it is printed.
fn tracing_free_warning(message: &str) {
    eprintln!("warning: leaving autocast failed: {message}");
}

/// Runs `f` with autocast to `kind` (`Kind::BFloat16` or `Kind::Half`) on `device`; the
/// previous state (enabled or not, and its precision) is restored afterwards.
pub fn autocast<T>(device: Device, kind: Kind, f: impl FnOnce() -> T) -> Result<T, AutocastError> {
    let error = |message| AutocastError {
        device,
        kind,
        message,
    };
    let dtype = scalar_type(kind)
        .filter(|_| kind != Kind::Float)
        .ok_or_else(|| error("autocast precision must be BFloat16 or Half".to_string()))?;
    let device_type = device_type(device);
    let (was_enabled, previous_dtype) = ffi::autocast_enter(device_type, dtype).map_err(error)?;
    let _scope = Scope {
        device_type,
        was_enabled,
        previous_dtype,
    };
    Ok(f())
}

/// Whether autocast is on for `device` on this thread.
pub fn autocast_enabled(device: Device) -> bool {
    // libtorch's autocast knows CPU, CUDA and MPS; asking about another type throws.
    match device {
        Device::Cpu | Device::Cuda(_) | Device::Mps => {
            ffi::autocast_is_enabled(device_type(device))
        }
        Device::Vulkan => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn cpu_bfloat16_runs_convolutions_in_bfloat16_and_restores_the_state() {
        let x = Tensor::ones([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::ones([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        assert!(!autocast_enabled(Device::Cpu));
        let (y, inside) = autocast(Device::Cpu, Kind::BFloat16, || {
            let y = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
            (y, autocast_enabled(Device::Cpu))
        })
        .unwrap();
        assert!(inside);
        assert!(!autocast_enabled(Device::Cpu));
        assert_eq!(y.kind(), Kind::BFloat16);
        // The centre pixel sums 27 ones: exact in bfloat16.
        assert_eq!(y.double_value(&[0, 0, 4, 4]), 27.0);
        // Outside the scope the same op stays float32.
        let y = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(y.kind(), Kind::Float);
    }

    #[test]
    fn scopes_nest_and_float32_is_refused() {
        let inner = autocast(Device::Cpu, Kind::BFloat16, || {
            autocast(Device::Cpu, Kind::BFloat16, || {
                autocast_enabled(Device::Cpu)
            })
            .unwrap()
                && autocast_enabled(Device::Cpu)
        })
        .unwrap();
        assert!(inner);
        assert!(!autocast_enabled(Device::Cpu));
        let err = autocast(Device::Cpu, Kind::Float, || ()).unwrap_err();
        assert!(err.to_string().contains("BFloat16 or Half"), "{err}");
    }

    #[test]
    fn a_panic_inside_the_scope_still_restores_the_state() {
        let result = std::panic::catch_unwind(|| {
            autocast(Device::Cpu, Kind::BFloat16, || panic!("inside")).unwrap()
        });
        assert!(result.is_err());
        assert!(!autocast_enabled(Device::Cpu));
    }
}

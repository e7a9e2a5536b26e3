//! The state of libtorch's default random generators (what `torch.get_rng_state()` and
//! `torch.cuda.get_rng_state()` return): dropout and random initialization draw from them,
//! so a checkpoint that saves and restores them resumes with the same random numbers.

use tch::{Device, Tensor};

use crate::ffi;

/// Reading or setting a generator's state failed (a state from another device type or
/// libtorch version, say).
#[derive(Debug, thiserror::Error)]
#[error("random generator of {device:?}: {message}")]
pub struct RngError {
    pub device: Device,
    pub message: String,
}

/// The state of `device`'s default generator, as a uint8 tensor on the CPU.
pub fn rng_state(device: Device) -> Result<Tensor, RngError> {
    ffi::rng_get_state(device).map_err(|message| RngError { device, message })
}

/// Puts `device`'s default generator back to `state` (from [`rng_state`]).
pub fn set_rng_state(device: Device, state: &Tensor) -> Result<(), RngError> {
    ffi::rng_set_state(device, state).map_err(|message| RngError { device, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn restoring_the_cpu_state_replays_the_same_numbers() {
        let _rng = crate::GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let saved = rng_state(Device::Cpu).unwrap();
        let first = Tensor::rand([16], (Kind::Float, Device::Cpu));
        let moved_on = Tensor::rand([16], (Kind::Float, Device::Cpu));
        assert!(!first.equal(&moved_on));
        set_rng_state(Device::Cpu, &saved).unwrap();
        let replay = Tensor::rand([16], (Kind::Float, Device::Cpu));
        assert!(first.equal(&replay));
    }

    #[test]
    fn a_state_that_is_not_a_generator_state_is_an_error() {
        let junk = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let err = set_rng_state(Device::Cpu, &junk).unwrap_err();
        assert!(err.to_string().contains("random generator of Cpu"), "{err}");
    }
}

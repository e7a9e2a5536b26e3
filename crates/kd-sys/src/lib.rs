//! Bindings to the few libtorch C++ APIs that tch 0.24 does not expose, through a small C
//! shim (`src/shim.cpp`, compiled against the same libtorch headers torch-sys builds with).
//!
//! - [`autocast`]: libtorch's automatic mixed precision (`torch.autocast`) for any device
//!   type, CPU included; tch only binds the CUDA float16 variant;
//! - [`retain_freed_memory`]: glibc malloc thresholds that keep activation buffers for reuse;
//! - [`adam_step`]: libtorch's Adam step with the optimizer state held by the caller;
//! - [`rng_state`] / [`set_rng_state`]: the default random generators' state.

mod adam;
mod allocator;
mod autocast;
mod ffi;
mod rng;

pub use adam::{adam_step, AdamConfig, AdamError, AdamState};
pub use allocator::retain_freed_memory;
pub use autocast::{autocast, autocast_enabled, AutocastError};
pub use rng::{rng_state, set_rng_state, RngError};

/// Tests that draw from libtorch's global generator hold this lock: tests run as threads of
/// one process, and a draw from another test in between would change their numbers.
#[cfg(test)]
pub(crate) static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

//! Bindings to the few libtorch C++ APIs that tch 0.24 does not expose, through a small C
//! shim (`src/shim.cpp`, compiled against the same libtorch headers torch-sys builds with).
//!
//! - [`autocast`]: libtorch's automatic mixed precision (`torch.autocast`) for any device
//!   type, CPU included; tch only binds the CUDA float16 variant;
//! - [`retain_freed_memory`]: glibc malloc thresholds that keep activation buffers for reuse;
//! - [`single_threaded_ops`]: a helper thread's tensor operations on that thread alone;
//! - [`adam_step`]: libtorch's Adam step with the optimizer state held by the caller;
//! - [`adam_step_members`]: the same step for K members stacked in one tensor (fused
//!   populations), each with its own learning rate, weight decay and count;
//! - [`CapturableAdam`]: Adam with its counts and learning rate on the device, for CUDA graphs;
//! - [`cuda_graph`]: CUDA graphs (`at::cuda::CUDAGraph`), where kd is built with CUDA;
//! - [`rng_state`] / [`set_rng_state`]: the default random generators' state;
//! - [`script_module`]: TorchScript modules to train, buffers included (tch binds
//!   parameters only);
//! - [`dist`]: c10d process groups (TCPStore rendezvous, Gloo or NCCL collectives);
//! - [`file_size_limit_as_error`]: writes past `ulimit -f` fail instead of killing;
//! - [`deterministic_algorithms`]: libtorch's deterministic algorithms only (cuDNN, cuBLAS).

mod adam;
mod allocator;
mod autocast;
mod capturable_adam;
pub mod cuda_graph;
pub mod dist;
mod ffi;
mod members_adam;
mod rng;
pub mod script_module;
mod threads;

pub use adam::{adam_step, AdamConfig, AdamError, AdamState};
pub use allocator::retain_freed_memory;
pub use autocast::{autocast, autocast_enabled, AutocastError};
pub use capturable_adam::CapturableAdam;
pub use members_adam::{adam_step_members, MemberStep, MembersAdamState};
pub use rng::{rng_state, set_rng_state, RngError};
pub use threads::single_threaded_ops;

/// Makes a write past the file-size limit (`ulimit -f`, `RLIMIT_FSIZE`) fail with an error
/// (`File too large`) that the program reports, instead of the default `SIGXFSZ` that kills
/// the process mid-write; returns whether the signal is now ignored.
pub fn file_size_limit_as_error() -> bool {
    ffi::ignore_sigxfsz()
}

/// Makes libtorch use deterministic algorithms only, so that GPU work repeats to the last
/// bit in another process on the same GPU and software: cuDNN without its autotuner
/// (`benchmark`) and with deterministic convolutions, libtorch's deterministic kernels
/// (`torch.use_deterministic_algorithms(True)`: an operation that has none then fails,
/// naming itself), and cuBLAS with a fixed workspace (`CUBLAS_WORKSPACE_CONFIG=:4096:8`,
/// set unless already set). Call it before any GPU work: cuBLAS reads that variable once.
pub fn deterministic_algorithms() -> Result<(), String> {
    ffi::set_deterministic()
}

/// Tests that draw from libtorch's global generator hold this lock: tests run as threads of
/// one process, and a draw from another test in between would change their numbers.
#[cfg(test)]
pub(crate) static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

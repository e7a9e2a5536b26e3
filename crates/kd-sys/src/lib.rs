//! Bindings to the few libtorch C++ APIs that tch 0.24 does not expose, through a small C
//! shim (`src/shim.cpp`, compiled against the same libtorch headers torch-sys builds with).
//!
//! - [`autocast`]: libtorch's automatic mixed precision (`torch.autocast`) for any device
//!   type, CPU included; tch only binds the CUDA float16 variant;
//! - [`retain_freed_memory`]: glibc malloc thresholds that keep activation buffers for reuse.

mod allocator;
mod autocast;
mod ffi;

pub use allocator::retain_freed_memory;
pub use autocast::{autocast, autocast_enabled, AutocastError};

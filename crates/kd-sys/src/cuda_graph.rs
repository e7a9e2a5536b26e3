//! CUDA graphs: the work a closure launches on a GPU, captured once and replayed with one
//! launch — libtorch's `at::cuda::CUDAGraph`, the class `torch.cuda.graph` wraps, following
//! PyTorch's recipe ("CUDA Graphs" in the CUDA semantics notes): warm up on a side stream,
//! capture on a side stream with the device idle, replay on the current stream. What the
//! graph reads and writes are the tensors the closure used at capture (static buffers): the
//! caller copies new inputs into them before a replay and reads outputs from them after.
//!
//! Where kd was built without CUDA (see `build.rs`) or runs without a GPU, every call fails
//! with the reason; [`cuda_graphs_built`] says which build this is.

use crate::ffi::{self, GraphHandle};

/// A capture, replay or warm-up failed (in libtorch, or in the closure: its error is kept).
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("CUDA graph: {0}")]
    Cuda(String),
    #[error("CUDA graph: the captured work failed: {0}")]
    Body(String),
}

/// Whether this build of kd has CUDA graphs (and NCCL): libtorch with CUDA, and the CUDA
/// and NCCL headers found when `kd-sys` was built.
pub fn cuda_graphs_built() -> bool {
    ffi::cuda_built()
}

/// The compute capability `(major, minor)` of CUDA device `device` (8.0 and up have
/// bfloat16 tensor cores).
pub fn cuda_capability(device: usize) -> Result<(u32, u32), GraphError> {
    ffi::cuda_capability(device).map_err(GraphError::Cuda)
}

/// Wraps `f` as the shim's body: true on success, its error (or panic) kept in `error`.
fn body<'a, E: std::fmt::Display>(
    mut f: impl FnMut() -> Result<(), E> + 'a,
    error: &'a mut Option<String>,
) -> impl FnMut() -> bool + 'a {
    move || match f() {
        Ok(()) => true,
        Err(e) => {
            *error = Some(e.to_string());
            false
        }
    }
}

fn body_failed(error: Option<String>) -> GraphError {
    GraphError::Body(error.unwrap_or_else(|| "it panicked".into()))
}

/// Runs `f` once on a side stream of CUDA device `device`, the device idle before and after
/// (the warm-up PyTorch's recipe asks for before a capture, so that lazily made state —
/// gradients, optimizer moments, cuDNN's choices — exists before the capture starts).
pub fn warm_up_on_side_stream<E: std::fmt::Display>(
    device: usize,
    f: impl FnMut() -> Result<(), E>,
) -> Result<(), GraphError> {
    let mut error = None;
    let ok = ffi::cuda_on_side_stream(device, body(f, &mut error)).map_err(GraphError::Cuda)?;
    if ok {
        Ok(())
    } else {
        Err(body_failed(error))
    }
}

/// A captured graph on one CUDA device.
#[derive(Debug)]
pub struct CudaGraph {
    handle: GraphHandle,
}

impl CudaGraph {
    /// Captures what `f` launches on CUDA device `device`. `f` must not synchronise with
    /// the host (no reads of values, no host-to-device copies of new host data) and must
    /// launch the same work on every call; its tensors become the graph's static buffers.
    ///
    /// A capture that `f` broke (with a synchronising call, say) cannot be undone: libtorch
    /// leaves the caching allocator routing to the graph's pool and the CUDA generators in
    /// capture mode, and later random draws on the device fail. The error then says so, and
    /// the process should do no more CUDA work (a fit ends with the error; the doctor runs
    /// its graph check last).
    pub fn capture<E: std::fmt::Display>(
        device: usize,
        f: impl FnMut() -> Result<(), E>,
    ) -> Result<Self, GraphError> {
        let mut error = None;
        let handle = ffi::cuda_graph_capture(device, body(f, &mut error));
        match (handle, error) {
            (Ok(Some(handle)), _) => Ok(Self { handle }),
            (Ok(None), error) => Err(body_failed(error)),
            (Err(cuda), None) => Err(GraphError::Cuda(cuda)),
            (Err(cuda), Some(work)) => Err(GraphError::Cuda(format!(
                "{cuda} (after the captured work failed: {work})"
            ))),
        }
    }

    /// Launches the captured work again, on the current stream.
    pub fn replay(&self) -> Result<(), GraphError> {
        self.handle.replay().map_err(GraphError::Cuda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_capture_and_warm_up_fail_with_the_reason_and_never_run_the_body() {
        if tch::Cuda::is_available() {
            return;
        }
        let mut ran = false;
        let err = CudaGraph::capture(0, || -> Result<(), String> {
            ran = true;
            Ok(())
        })
        .unwrap_err();
        let message = err.to_string();
        let expected = if cuda_graphs_built() {
            "CUDA is not available"
        } else {
            "kd was built without CUDA graphs"
        };
        assert!(message.contains(expected), "{message}");
        let err = warm_up_on_side_stream(0, || -> Result<(), String> {
            ran = true;
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!ran, "the body ran without a device");
    }

    #[test]
    fn this_build_has_the_cuda_part_where_libtorch_has_cuda_and_the_headers_are_in_the_venv() {
        // The workspace's venv has torch's CUDA wheel and the CUDA/NCCL headers
        // (`cargo xtask setup` installs them): the shim's CUDA part must be in.
        let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.venv/lib/python3.11/site-packages");
        let venv_has_cuda = site.join("torch/lib/libtorch_cuda.so").exists()
            && site.join("nvidia/cu13/include/crt/host_config.h").exists()
            && site.join("nvidia/nccl/include/nccl.h").exists();
        if venv_has_cuda {
            assert!(
                cuda_graphs_built(),
                "the CUDA part of the shim was left out"
            );
        }
    }
}

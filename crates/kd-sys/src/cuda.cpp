// CUDA graphs and NCCL for kd, from the libtorch kd links: at::cuda::CUDAGraph (what
// torch.cuda.graph wraps) and c10d::ProcessGroupNCCL (torch.distributed's "nccl" backend).
// Compiled only where libtorch has CUDA and the CUDA and NCCL headers are found (build.rs);
// cuda_stub.cpp stands in otherwise.

#define USE_C10D_NCCL 1

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "cuda.hpp"
#include "guard.hpp"

using kd::guarded;

struct KdCudaGraph {
  at::cuda::CUDAGraph graph;
};

namespace {
// The body of a capture or warm-up: a Rust closure behind a C function pointer; non-zero
// means it failed (the Rust side keeps its error).
using Body = int (*)(void* ctx);

void require_cuda(int device) {
  if (!torch::cuda::is_available()) {
    throw std::runtime_error("CUDA is not available (no CUDA device or driver)");
  }
  if (device < 0 || static_cast<size_t>(device) >= torch::cuda::device_count()) {
    throw std::runtime_error("no CUDA device " + std::to_string(device));
  }
}

// Ends the capture of `g`. A capture whose end fails (the captured work broke it) cannot be
// undone: CUDAGraph::capture_end throws before it stops the caching allocator's routing of
// the capture's allocations to the graph's pool and before it takes the CUDA generators out
// of capture mode, so later random draws on the device fail in this process. The error says
// so, ahead of libtorch's own message.
void end_capture(KdCudaGraph& g) {
  try {
    g.graph.capture_end();
  } catch (const std::exception& e) {
    throw std::runtime_error(
        std::string("the capture could not be ended; this process's CUDA state is left "
                    "mid-capture, so it should do no more CUDA work: ") +
        e.what());
  }
}
}  // namespace

namespace kd {
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int world, int device,
                                                    std::chrono::milliseconds timeout) {
  if (!torch::cuda::is_available()) {
    throw std::runtime_error("NCCL needs a CUDA device; none is available");
  }
  require_cuda(device);
  // The rank's GPU is the current device: NCCL's communicator and barrier use it.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
}
}  // namespace kd

extern "C" {

bool kd_cuda_built() { return true; }

// The compute capability (major, minor) of CUDA device `device`.
int kd_cuda_capability(int device, int* major, int* minor) {
  return guarded([&] {
    require_cuda(device);
    const cudaDeviceProp* prop = at::cuda::getDeviceProperties(device);
    *major = prop->major;
    *minor = prop->minor;
  });
}

// Runs `body` on a fresh side stream of `device` (what PyTorch's recipe does for the warm-up
// iterations before a capture), then waits for the device.
int kd_cuda_on_side_stream(int device, Body body, void* ctx, int* body_status) {
  return guarded([&] {
    require_cuda(device);
    torch::cuda::synchronize(device);
    {
      c10::cuda::CUDAStreamGuard on(c10::cuda::getStreamFromPool(false, device));
      *body_status = body(ctx);
    }
    torch::cuda::synchronize(device);
  });
}

// Captures what `body` launches on `device` into a new graph: on a side stream, between
// capture_begin and capture_end, with the device idle before and after. A body that fails
// ends the capture and no graph is returned; if the capture cannot be ended (see
// end_capture), that is the error, whether or not the body failed.
int kd_cuda_graph_capture(int device, Body body, void* ctx, int* body_status,
                          KdCudaGraph** out) {
  return guarded([&] {
    require_cuda(device);
    auto g = std::make_unique<KdCudaGraph>();
    torch::cuda::synchronize(device);
    {
      c10::cuda::CUDAStreamGuard on(c10::cuda::getStreamFromPool(false, device));
      // Thread-local (torch.cuda.graph's capture_error_mode="thread_local"): the loader's
      // thread keeps copying the next batches to the device while this one captures.
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      *body_status = body(ctx);
      end_capture(*g);
    }
    torch::cuda::synchronize(device);
    if (*body_status == 0) {
      *out = g.release();
    }
  });
}

// Launches the captured work again on the current stream.
int kd_cuda_graph_replay(KdCudaGraph* g) {
  return guarded([&] { g->graph.replay(); });
}

void kd_cuda_graph_free(KdCudaGraph* g) {
  try {
    delete g;
  } catch (...) {
  }
}

}  // extern "C"

// The CUDA part of the shim where kd is built without it (a CPU-only libtorch, or no CUDA
// and NCCL headers next to it): the same entry points, each failing with the reason.

#include <stdexcept>

#include "cuda.hpp"
#include "guard.hpp"

using kd::guarded;

struct KdCudaGraph {};

namespace {
using Body = int (*)(void* ctx);
const char* const kNotBuilt =
    "kd was built without CUDA graphs and NCCL (libtorch without CUDA, or the CUDA and NCCL "
    "headers were not found when kd-sys was built)";
}  // namespace

namespace kd {
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, int,
                                                    int, int, std::chrono::milliseconds) {
  throw std::runtime_error(kNotBuilt);
}
}  // namespace kd

extern "C" {

bool kd_cuda_built() { return false; }

int kd_cuda_capability(int, int*, int*) {
  return guarded([] { throw std::runtime_error(kNotBuilt); });
}

int kd_cuda_on_side_stream(int, Body, void*, int*) {
  return guarded([] { throw std::runtime_error(kNotBuilt); });
}

int kd_cuda_graph_capture(int, Body, void*, int*, KdCudaGraph**) {
  return guarded([] { throw std::runtime_error(kNotBuilt); });
}

int kd_cuda_graph_replay(KdCudaGraph*) {
  return guarded([] { throw std::runtime_error(kNotBuilt); });
}

void kd_cuda_graph_free(KdCudaGraph* g) { delete g; }

}  // extern "C"

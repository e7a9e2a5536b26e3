// What the CUDA part of the shim (cuda.cpp, or cuda_stub.cpp where libtorch or the CUDA
// headers lack CUDA) gives the rest of the shim.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace kd {
// A ProcessGroupNCCL (PyTorch's GPU backend) for rank `rank` of `world` over `store`, on CUDA
// device `device` (made the current device); throws where kd was built without NCCL.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int world, int device,
                                                    std::chrono::milliseconds timeout);
}  // namespace kd

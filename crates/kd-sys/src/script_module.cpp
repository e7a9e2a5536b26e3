// A TorchScript module as a trainable network: torch::jit::load, train/eval mode, forward,
// its parameters and buffers (the tensors themselves, which training updates in place), and
// torch::jit::Module::save. tch 0.24 binds loading and forward but not buffers, and keeps
// its module handle private, so kd loads modules it trains through this file.

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <stdexcept>
#include <string>

#include "guard.hpp"

using kd::guarded;

struct KdScriptModule {
  torch::jit::Module module;
};

// The graph executor's optimizations off for one call (the setting is per thread): the
// profiling executor otherwise runs a module's first calls as written and later ones as an
// optimized graph, which on a GPU may fuse operations (other kernels, other rounding), so a
// resumed fit could differ from an uninterrupted one. Unoptimized, every call interprets
// the same operations, recorded by eager autograd, as PyTorch's eager mode runs them.
struct Unoptimized {
  bool previous = torch::jit::getGraphExecutorOptimize();
  Unoptimized() { torch::jit::setGraphExecutorOptimize(false); }
  ~Unoptimized() { torch::jit::setGraphExecutorOptimize(previous); }
};

extern "C" {

int kd_script_load(const char* path, int8_t device_type, int8_t index, KdScriptModule** out) {
  return guarded([&] {
    auto device = c10::Device(static_cast<c10::DeviceType>(device_type), index);
    *out = new KdScriptModule{torch::jit::load(std::string(path), device)};
  });
}

void kd_script_free(KdScriptModule* m) { delete m; }

// Training (dropout, batch statistics) or evaluation behaviour, for every submodule.
int kd_script_set_training(KdScriptModule* m, bool on) {
  return guarded([&] { m->module.train(on); });
}

// forward(input); an output that is not one tensor is an error naming what it is.
int kd_script_forward(KdScriptModule* m, const at::Tensor* input, at::Tensor** out) {
  return guarded([&] {
    Unoptimized unoptimized;
    auto result = m->module.forward({*input});
    if (!result.isTensor()) {
      throw std::runtime_error("forward returned " + std::string(result.tagKind()) +
                               ", not one tensor of logits");
    }
    *out = new at::Tensor(result.toTensor());
  });
}

// Gives each parameter (buffers = false) or buffer (buffers = true), recursively and named as
// in the module's state_dict, to `each` as a new handle to the same tensor.
int kd_script_named(KdScriptModule* m, bool buffers,
                    void (*each)(void* ctx, const char* name, at::Tensor* tensor), void* ctx) {
  return guarded([&] {
    if (buffers) {
      for (const auto& b : m->module.named_buffers(/*recurse=*/true)) {
        each(ctx, b.name.c_str(), new at::Tensor(b.value));
      }
    } else {
      for (const auto& p : m->module.named_parameters(/*recurse=*/true)) {
        each(ctx, p.name.c_str(), new at::Tensor(p.value));
      }
    }
  });
}

int kd_script_save(KdScriptModule* m, const char* path) {
  return guarded([&] { m->module.save(std::string(path)); });
}

}  // extern "C"

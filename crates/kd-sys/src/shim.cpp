// C entry points over libtorch C++ APIs that tch 0.24 does not bind. Every function catches
// C++ exceptions and reports them as a message readable with kd_last_error, so no exception
// crosses into Rust.

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "guard.hpp"

namespace kd {
thread_local std::string last_error;
}  // namespace kd

using kd::guarded;

extern "C" {

const char* kd_last_error() { return kd::last_error.c_str(); }

// Autocast state of one device type (c10::DeviceType: 0 CPU, 1 CUDA), as
// torch.autocast(device_type, dtype) sets it on entry. `dtype` is a c10::ScalarType code.
int kd_autocast_enter(int8_t device_type, int8_t dtype, bool* was_enabled,
                      int8_t* previous_dtype) {
  return guarded([&] {
    auto device = static_cast<c10::DeviceType>(device_type);
    *was_enabled = at::autocast::is_autocast_enabled(device);
    *previous_dtype = static_cast<int8_t>(at::autocast::get_autocast_dtype(device));
    at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::increment_nesting();
  });
}

// Restores the state kd_autocast_enter saved; the outermost exit drops the cast cache.
int kd_autocast_exit(int8_t device_type, bool was_enabled, int8_t previous_dtype) {
  return guarded([&] {
    auto device = static_cast<c10::DeviceType>(device_type);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, was_enabled);
    at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(previous_dtype));
  });
}

bool kd_autocast_is_enabled(int8_t device_type) {
  try {
    return at::autocast::is_autocast_enabled(static_cast<c10::DeviceType>(device_type));
  } catch (...) {
    return false;
  }
}

}  // extern "C"

#include <dlfcn.h>
#include <malloc.h>

extern "C" {

// The calling thread's OpenMP team size (`omp_set_num_threads`, a per-thread setting), looked
// up in the OpenMP runtime libtorch loaded. Returns 1 if the runtime was found.
int kd_omp_set_this_thread(int threads) {
  using SetNumThreads = void (*)(int);
  auto set = reinterpret_cast<SetNumThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set == nullptr) {
    return 0;
  }
  set(threads);
  return 1;
}

// glibc malloc: serve blocks up to `bytes` from the heap instead of fresh mmap()s, and keep up
// to `bytes` of freed heap memory instead of returning it to the kernel. Returns 1 on success.
int kd_malloc_retain(long bytes) {
  // Both are attempted, whatever the other's outcome.
  int mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes));
  int trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes));
  return mmap_ok == 1 && trim_ok == 1;
}

}  // extern "C"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>

#include <cmath>
#include <mutex>

extern "C" {

// One step of libtorch's C++ `torch::optim::Adam` (amsgrad off) over `n` parameters, with
// the optimizer state held by the caller: `exp_avg[i]` and `exp_avg_sq[i]` are allocated
// (zeros, the parameter's memory format) on a parameter's first step, `steps[i]` counts its
// steps. The arithmetic is libtorch's, operation for operation, so results are bitwise equal:
//   grad = grad + weight_decay * p                      (if weight_decay != 0)
//   exp_avg.mul_(beta1).add_(grad, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2^step)).add_(eps)
//   p.addcdiv_(exp_avg, denom, -lr / (1 - beta1^step))
// Parameters without a gradient are skipped and keep their step count.
int kd_adam_step(at::Tensor** params, at::Tensor** exp_avg, at::Tensor** exp_avg_sq,
                 int64_t* steps, size_t n, double lr, double beta1, double beta2, double eps,
                 double weight_decay) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& p = *params[i];
      at::Tensor grad = p.grad();
      if (!grad.defined()) {
        continue;
      }
      at::Tensor& m = *exp_avg[i];
      at::Tensor& v = *exp_avg_sq[i];
      if (!m.defined()) {
        m = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      if (!v.defined()) {
        v = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      steps[i] += 1;
      double bias_correction1 = 1 - std::pow(beta1, steps[i]);
      double bias_correction2 = 1 - std::pow(beta2, steps[i]);
      if (weight_decay != 0) {
        grad = grad.add(p, weight_decay);
      }
      m.mul_(beta1).add_(grad, 1 - beta1);
      v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      at::Tensor denom = (v.sqrt() / std::sqrt(bias_correction2)).add_(eps);
      double step_size = lr / bias_correction1;
      p.addcdiv_(m, denom, -step_size);
    }
  });
}

// One Adam step of a population (HFTA): every parameter stacks `members` members' tensors
// along its first axis, member k's being `p.chunk(members, 0)[k]`. Each member steps as
// `kd_adam_step` would step its own tensors — the same operations on its contiguous slice,
// with its own learning rate `lr[k]`, weight decay `weight_decay[k]` and step count
// `steps[i * members + k]` — and a member with `active[k] == 0` is left as it is (stopped,
// or a non-finite step skipped). The moments are allocated whole (zeros) on first use.
int kd_adam_step_members(at::Tensor** params, at::Tensor** exp_avg, at::Tensor** exp_avg_sq,
                         int64_t* steps, size_t n, int64_t members, const double* lr,
                         const double* weight_decay, const uint8_t* active, double beta1,
                         double beta2, double eps) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    if (members < 1) {
      throw std::runtime_error("members Adam: expected at least one member");
    }
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& p = *params[i];
      at::Tensor grad = p.grad();
      if (!grad.defined()) {
        continue;
      }
      if (p.dim() == 0 || p.size(0) % members != 0) {
        throw std::runtime_error("members Adam: parameter " + std::to_string(i) +
                                 " does not stack " + std::to_string(members) +
                                 " members on its first axis");
      }
      at::Tensor& m = *exp_avg[i];
      at::Tensor& v = *exp_avg_sq[i];
      if (!m.defined()) {
        m = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      if (!v.defined()) {
        v = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      if (!grad.sizes().equals(p.sizes()) || !m.sizes().equals(p.sizes()) ||
          !v.sizes().equals(p.sizes())) {
        throw std::runtime_error("members Adam: the gradient or state of parameter " +
                                 std::to_string(i) + " is not of its shape");
      }
      auto ps = p.chunk(members, 0);
      auto gs = grad.chunk(members, 0);
      auto ms = m.chunk(members, 0);
      auto vs = v.chunk(members, 0);
      for (int64_t k = 0; k < members; ++k) {
        if (!active[k]) {
          continue;
        }
        int64_t& step = steps[i * members + k];
        step += 1;
        double bias_correction1 = 1 - std::pow(beta1, step);
        double bias_correction2 = 1 - std::pow(beta2, step);
        at::Tensor g = gs[k];
        if (weight_decay[k] != 0) {
          g = g.add(ps[k], weight_decay[k]);
        }
        ms[k].mul_(beta1).add_(g, 1 - beta1);
        vs[k].mul_(beta2).addcmul_(g, g, 1 - beta2);
        at::Tensor denom = (vs[k].sqrt() / std::sqrt(bias_correction2)).add_(eps);
        double step_size = lr[k] / bias_correction1;
        ps[k].addcdiv_(ms[k], denom, -step_size);
      }
    }
  });
}

// One Adam step in the form of PyTorch's `Adam(capturable=True)` (torch/optim/adam.py,
// `_single_tensor_adam`), where every quantity stays on the parameters' device so that a CUDA
// graph can capture the step and replay it with new values: the step counts `steps[i]` and
// the learning rate `lr` are float tensors there, and the bias corrections are computed from
// them on the device:
//   step += 1
//   grad = grad + weight_decay * p                      (if weight_decay != 0)
//   exp_avg.lerp_(grad, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   step_size = lr / (1 - beta1^step)
//   denom = exp_avg_sq.sqrt() / (sqrt(1 - beta2^step) * -step_size) + eps / -step_size
//   p.addcdiv_(exp_avg, denom)
// `skip` (a 0-dim tensor, or undefined): where it is non-zero, the step leaves parameters,
// moments and counts as they were (a step with a non-finite gradient), decided on the
// device. Every state tensor must exist (zeros before the first step) and every parameter
// must have a gradient: nothing is allocated lazily, nothing is read back to the host.
int kd_adam_step_capturable(at::Tensor** params, at::Tensor** exp_avg, at::Tensor** exp_avg_sq,
                            at::Tensor** steps, size_t n, const at::Tensor* lr, double beta1,
                            double beta2, double eps, double weight_decay,
                            const at::Tensor* skip) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    const bool guarded_step = skip != nullptr && skip->defined();
    at::Tensor keep_old;
    if (guarded_step) {
      keep_old = skip->ne(0);
    }
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& p = *params[i];
      at::Tensor grad = p.grad();
      if (!grad.defined()) {
        throw std::runtime_error("capturable Adam: parameter " + std::to_string(i) +
                                 " has no gradient");
      }
      at::Tensor& m = *exp_avg[i];
      at::Tensor& v = *exp_avg_sq[i];
      at::Tensor& step = *steps[i];
      if (!m.defined() || !v.defined() || !step.defined()) {
        throw std::runtime_error("capturable Adam: the state of parameter " +
                                 std::to_string(i) + " is not allocated");
      }
      if (weight_decay != 0) {
        grad = grad.add(p, weight_decay);
      }
      at::Tensor next_step = step + 1;
      at::Tensor m_next = guarded_step ? m.lerp(grad, 1 - beta1) : m.lerp_(grad, 1 - beta1);
      at::Tensor v_next = guarded_step ? v.mul(beta2).addcmul_(grad, grad, 1 - beta2)
                                       : v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      at::Tensor bias_correction1 = 1 - at::pow(beta1, next_step);
      at::Tensor bias_correction2 = 1 - at::pow(beta2, next_step);
      at::Tensor step_size_neg = (*lr / bias_correction1).neg();
      at::Tensor denom = (v_next.sqrt() / (bias_correction2.sqrt() * step_size_neg))
                             .add_(step_size_neg.reciprocal() * eps);
      if (guarded_step) {
        p.copy_(at::where(keep_old, p, p.addcdiv(m_next, denom)));
        m.copy_(at::where(keep_old, m, m_next));
        v.copy_(at::where(keep_old, v, v_next));
        step.copy_(at::where(keep_old, step, next_step));
      } else {
        p.addcdiv_(m_next, denom);
        step.copy_(next_step);
      }
    }
  });
}

// The state of the default random generator of a device (c10::DeviceType code and index),
// as a new uint8 tensor (what torch.get_rng_state / torch.cuda.get_rng_state return).
int kd_rng_get_state(int8_t device_type, int8_t index, at::Tensor** out) {
  return guarded([&] {
    auto device = c10::Device(static_cast<c10::DeviceType>(device_type), index);
    auto gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    *out = new at::Tensor(gen.get_state());
  });
}

// Sets the default generator of a device to a state from kd_rng_get_state.
int kd_rng_set_state(int8_t device_type, int8_t index, const at::Tensor* state) {
  return guarded([&] {
    auto device = c10::Device(static_cast<c10::DeviceType>(device_type), index);
    auto gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*state);
  });
}

}  // extern "C"

#include <csignal>

extern "C" {

// Ignores SIGXFSZ, so that a write past the file-size limit (RLIMIT_FSIZE) fails with EFBIG,
// an error the caller reports, instead of killing the process. Returns 1 on success.
int kd_ignore_sigxfsz() { return std::signal(SIGXFSZ, SIG_IGN) != SIG_ERR; }

}  // extern "C"

extern "C" {

// Deterministic algorithms only, as torch.use_deterministic_algorithms(True) with
// torch.backends.cudnn.deterministic = True and torch.backends.cudnn.benchmark = False set
// them: an operation without a deterministic implementation then throws, naming itself.
// cuBLAS is deterministic only with a fixed workspace, which it and libtorch read from
// CUBLAS_WORKSPACE_CONFIG when cuBLAS first runs: it is set to ":4096:8" unless already set.
int kd_set_deterministic() {
  return guarded([] {
    setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    at::globalContext().setBenchmarkCuDNN(false);
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  });
}

}  // extern "C"

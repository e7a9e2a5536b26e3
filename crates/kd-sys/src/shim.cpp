// C entry points over libtorch C++ APIs that tch 0.24 does not bind. Every function catches
// C++ exceptions and reports them as a message readable with kd_last_error, so no exception
// crosses into Rust.

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace {
thread_local std::string last_error;

template <typename F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}
}  // namespace

extern "C" {

const char* kd_last_error() { return last_error.c_str(); }

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

#include <malloc.h>

extern "C" {

// glibc malloc: serve blocks up to `bytes` from the heap instead of fresh mmap()s, and keep up
// to `bytes` of freed heap memory instead of returning it to the kernel. Returns 1 on success.
int kd_malloc_retain(long bytes) {
  // Both are attempted, whatever the other's outcome.
  int mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes));
  int trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes));
  return mmap_ok == 1 && trim_ok == 1;
}

}  // extern "C"

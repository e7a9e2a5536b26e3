// The error convention of every shim function: C++ exceptions are caught and their message
// kept for kd_last_error (defined in shim.cpp), so none crosses into Rust.
#pragma once

#include <exception>
#include <string>

namespace kd {
extern thread_local std::string last_error;

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
}  // namespace kd

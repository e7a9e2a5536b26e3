//! The C functions of `src/shim.cpp`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

extern "C" {
    fn kd_last_error() -> *const c_char;
    fn kd_autocast_enter(
        device_type: i8,
        dtype: i8,
        was_enabled: *mut bool,
        previous_dtype: *mut i8,
    ) -> c_int;
    fn kd_autocast_exit(device_type: i8, was_enabled: bool, previous_dtype: i8) -> c_int;
    fn kd_autocast_is_enabled(device_type: i8) -> bool;
    fn kd_malloc_retain(bytes: std::os::raw::c_long) -> c_int;
}

/// The message of the C++ exception behind the last non-zero status on this thread.
fn last_error() -> String {
    // SAFETY: the shim returns a pointer to a thread-local, NUL-terminated string that
    // stays valid until the next shim call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(kd_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn check(status: c_int) -> Result<(), String> {
    if status == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// Enables autocast to `dtype` on `device_type`; returns the previous state.
pub(crate) fn autocast_enter(device_type: i8, dtype: i8) -> Result<(bool, i8), String> {
    let (mut was_enabled, mut previous_dtype) = (false, 0i8);
    // SAFETY: plain values in, two out-pointers to live locals.
    check(unsafe { kd_autocast_enter(device_type, dtype, &mut was_enabled, &mut previous_dtype) })?;
    Ok((was_enabled, previous_dtype))
}

/// Restores the state [`autocast_enter`] returned.
pub(crate) fn autocast_exit(
    device_type: i8,
    was_enabled: bool,
    previous_dtype: i8,
) -> Result<(), String> {
    // SAFETY: plain values in.
    check(unsafe { kd_autocast_exit(device_type, was_enabled, previous_dtype) })
}

/// Whether autocast is on for `device_type` on this thread.
pub(crate) fn autocast_is_enabled(device_type: i8) -> bool {
    // SAFETY: plain value in; the shim cannot throw here.
    unsafe { kd_autocast_is_enabled(device_type) }
}

/// `mallopt` of both thresholds; whether glibc accepted them.
pub(crate) fn malloc_retain(bytes: i64) -> bool {
    // SAFETY: plain value in; mallopt only changes allocator parameters.
    unsafe { kd_malloc_retain(bytes as std::os::raw::c_long) == 1 }
}

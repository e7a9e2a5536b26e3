//! A TorchScript module (saved by PyTorch's `torch.jit.save`) that kd can train: loaded
//! through `torch::jit::load`, run in training or evaluation mode, with its parameters and
//! buffers — batch norm's running statistics included — as tensors shared with the module,
//! so that an optimizer stepping them, or a checkpoint copied into them, changes the module;
//! and saved back with `torch::jit::Module::save` (`src/script_module.cpp`).
#![allow(unsafe_code)]

use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::ptr::NonNull;

use tch::{Device, Tensor};
use torch_sys::C_tensor;

use crate::ffi::{check, device_index, device_type};

#[repr(C)]
struct KdScriptModule {
    _private: [u8; 0],
}

type EachTensor = extern "C" fn(ctx: *mut c_void, name: *const c_char, tensor: *mut C_tensor);

extern "C" {
    fn kd_script_load(
        path: *const c_char,
        device_type: i8,
        index: i8,
        out: *mut *mut KdScriptModule,
    ) -> c_int;
    fn kd_script_free(m: *mut KdScriptModule);
    fn kd_script_set_training(m: *mut KdScriptModule, on: bool) -> c_int;
    fn kd_script_forward(
        m: *mut KdScriptModule,
        input: *const C_tensor,
        out: *mut *mut C_tensor,
    ) -> c_int;
    fn kd_script_named(
        m: *mut KdScriptModule,
        buffers: bool,
        each: EachTensor,
        ctx: *mut c_void,
    ) -> c_int;
    fn kd_script_save(m: *mut KdScriptModule, path: *const c_char) -> c_int;
}

/// Loading, running or saving a module failed: libtorch's message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScriptError(pub String);

/// A loaded TorchScript module, owned and freed once when dropped.
#[derive(Debug)]
pub struct ScriptModule(NonNull<KdScriptModule>);

// SAFETY: a `torch::jit::Module` may move between threads; kd calls it from one at a time
// (`&mut self` for mode changes; the trainable wrapper locks around each call).
unsafe impl Send for ScriptModule {}

fn c_path(path: &Path) -> Result<CString, ScriptError> {
    CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| ScriptError(format!("{}: a path with a NUL byte", path.display())))
}

extern "C" fn push_named(ctx: *mut c_void, name: *const c_char, tensor: *mut C_tensor) {
    // SAFETY: `ctx` is the `Vec` `named` lent for this call; `name` is NUL-terminated and
    // valid during the call; `tensor` is a new `at::Tensor` whose ownership passes here.
    let (out, name, tensor) = unsafe {
        (
            &mut *(ctx as *mut Vec<(String, Tensor)>),
            CStr::from_ptr(name).to_string_lossy().into_owned(),
            Tensor::from_ptr(tensor),
        )
    };
    out.push((name, tensor));
}

impl ScriptModule {
    /// Loads the module saved at `path` onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self, ScriptError> {
        let c = c_path(path)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: a NUL-terminated path and one out-pointer to a live local.
        check(unsafe {
            kd_script_load(
                c.as_ptr(),
                device_type(device),
                device_index(device),
                &mut out,
            )
        })
        .map_err(ScriptError)?;
        NonNull::new(out)
            .map(Self)
            .ok_or_else(|| ScriptError("torch::jit::load returned no module".into()))
    }

    /// Training (`true`: dropout, batch statistics) or evaluation behaviour.
    pub fn set_training(&mut self, on: bool) -> Result<(), ScriptError> {
        // SAFETY: a live module this handle owns.
        check(unsafe { kd_script_set_training(self.0.as_ptr(), on) }).map_err(ScriptError)
    }

    /// `forward(input)`, which must return one tensor.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, ScriptError> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live module, a live input borrowed for the call, one out-pointer.
        check(unsafe { kd_script_forward(self.0.as_ptr(), input.as_ptr(), &mut out) })
            .map_err(ScriptError)?;
        // SAFETY: a tensor the shim allocated with `new`, owned from here on.
        Ok(unsafe { Tensor::from_ptr(out) })
    }

    fn named(&self, buffers: bool) -> Result<Vec<(String, Tensor)>, ScriptError> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        let ctx = &mut out as *mut Vec<(String, Tensor)> as *mut c_void;
        // SAFETY: a live module; `push_named` only touches `out` through `ctx`, during the call.
        check(unsafe { kd_script_named(self.0.as_ptr(), buffers, push_named, ctx) })
            .map_err(ScriptError)?;
        Ok(out)
    }

    /// The parameters, named as in the module's `state_dict` (`layer1.0.weight`), sharing
    /// storage with the module.
    pub fn named_parameters(&self) -> Result<Vec<(String, Tensor)>, ScriptError> {
        self.named(false)
    }

    /// The buffers (`bn.running_mean`, `bn.num_batches_tracked`, ...), sharing storage with
    /// the module.
    pub fn named_buffers(&self) -> Result<Vec<(String, Tensor)>, ScriptError> {
        self.named(true)
    }

    /// Writes the module, with its current parameters and buffers, to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ScriptError> {
        let c = c_path(path)?;
        // SAFETY: a live module and a NUL-terminated path.
        check(unsafe { kd_script_save(self.0.as_ptr(), c.as_ptr()) }).map_err(ScriptError)
    }
}

impl Drop for ScriptModule {
    fn drop(&mut self) {
        // SAFETY: the module was made by the shim and is freed exactly once, here.
        unsafe { kd_script_free(self.0.as_ptr()) }
    }
}

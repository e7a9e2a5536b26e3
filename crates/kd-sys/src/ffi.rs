//! The C functions of `src/shim.cpp`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use tch::{Device, Tensor};
use torch_sys::C_tensor;

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
    fn kd_omp_set_this_thread(threads: c_int) -> c_int;
    fn kd_adam_step(
        params: *const *mut C_tensor,
        exp_avg: *const *mut C_tensor,
        exp_avg_sq: *const *mut C_tensor,
        steps: *mut i64,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> c_int;
    fn kd_adam_step_members(
        params: *const *mut C_tensor,
        exp_avg: *const *mut C_tensor,
        exp_avg_sq: *const *mut C_tensor,
        steps: *mut i64,
        n: usize,
        members: i64,
        lr: *const f64,
        weight_decay: *const f64,
        active: *const u8,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> c_int;
    fn kd_adam_step_capturable(
        params: *const *mut C_tensor,
        exp_avg: *const *mut C_tensor,
        exp_avg_sq: *const *mut C_tensor,
        steps: *const *mut C_tensor,
        n: usize,
        lr: *const C_tensor,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        skip: *const C_tensor,
    ) -> c_int;
    fn kd_rng_get_state(device_type: i8, index: i8, out: *mut *mut C_tensor) -> c_int;
    fn kd_rng_set_state(device_type: i8, index: i8, state: *const C_tensor) -> c_int;
    fn kd_ignore_sigxfsz() -> c_int;
    fn kd_set_deterministic() -> c_int;
    fn kd_pg_new(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        serve_store: bool,
        prefix: *const c_char,
        gloo_host: *const c_char,
        timeout_ms: i64,
        nccl_device: c_int,
        out: *mut *mut KdProcessGroup,
    ) -> c_int;
    fn kd_pg_all_reduce_sum(
        pg: *mut KdProcessGroup,
        tensors: *const *mut C_tensor,
        n: usize,
    ) -> c_int;
    fn kd_pg_broadcast(
        pg: *mut KdProcessGroup,
        tensors: *const *mut C_tensor,
        n: usize,
        root: c_int,
    ) -> c_int;
    fn kd_pg_barrier(pg: *mut KdProcessGroup) -> c_int;
    fn kd_pg_free(pg: *mut KdProcessGroup);
    fn kd_cuda_built() -> bool;
    fn kd_cuda_capability(device: c_int, major: *mut c_int, minor: *mut c_int) -> c_int;
    fn kd_cuda_on_side_stream(
        device: c_int,
        body: extern "C" fn(*mut c_void) -> c_int,
        ctx: *mut c_void,
        body_status: *mut c_int,
    ) -> c_int;
    fn kd_cuda_graph_capture(
        device: c_int,
        body: extern "C" fn(*mut c_void) -> c_int,
        ctx: *mut c_void,
        body_status: *mut c_int,
        out: *mut *mut KdCudaGraph,
    ) -> c_int;
    fn kd_cuda_graph_replay(g: *mut KdCudaGraph) -> c_int;
    fn kd_cuda_graph_free(g: *mut KdCudaGraph);
}

/// The shim's CUDA graph (opaque).
#[repr(C)]
pub(crate) struct KdCudaGraph {
    _private: [u8; 0],
}

/// The shim's process group (opaque).
#[repr(C)]
pub(crate) struct KdProcessGroup {
    _private: [u8; 0],
}

/// The `c10::DeviceType` code of `device`.
pub(crate) fn device_type(device: Device) -> i8 {
    match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        Device::Mps => 13,
        Device::Vulkan => 10,
    }
}

/// The device index of `device` (-1: the current one, for device types without indices).
pub(crate) fn device_index(device: Device) -> i8 {
    match device {
        Device::Cuda(i) => i8::try_from(i).unwrap_or(i8::MAX),
        _ => -1,
    }
}

/// The message of the C++ exception behind the last non-zero status on this thread.
fn last_error() -> String {
    // SAFETY: the shim returns a pointer to a thread-local, NUL-terminated string that
    // stays valid until the next shim call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(kd_last_error()) }
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn check(status: c_int) -> Result<(), String> {
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

/// Adam's hyperparameters, as `kd_adam_step` takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Panics unless every state slice has one entry per parameter (`n` of them).
fn one_state_per_parameter(n: usize, state_lengths: [usize; 3]) {
    assert!(
        state_lengths.iter().all(|&len| len == n),
        "one state entry per parameter"
    );
}

/// One Adam step; the four slices have one entry per parameter.
pub(crate) fn adam_step(
    params: &[Tensor],
    exp_avg: &mut [Tensor],
    exp_avg_sq: &mut [Tensor],
    steps: &mut [i64],
    h: AdamHyper,
) -> Result<(), String> {
    let n = params.len();
    one_state_per_parameter(n, [exp_avg.len(), exp_avg_sq.len(), steps.len()]);
    let params: Vec<*mut C_tensor> = params.iter().map(|t| t.as_ptr() as *mut _).collect();
    let m: Vec<*mut C_tensor> = exp_avg.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let v: Vec<*mut C_tensor> = exp_avg_sq.iter_mut().map(|t| t.as_mut_ptr()).collect();
    // SAFETY: every pointer is a live `at::Tensor` owned by a tch `Tensor` borrowed for the
    // call; the shim only assigns to the state tensors (exclusively borrowed) and updates the
    // parameters in place, as tch's own optimizer does.
    check(unsafe {
        kd_adam_step(
            params.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            steps.as_mut_ptr(),
            n,
            h.lr,
            h.beta1,
            h.beta2,
            h.eps,
            h.weight_decay,
        )
    })
}

/// Each member's own hyperparameters for [`adam_step_members`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemberHyper<'a> {
    pub lr: &'a [f64],
    pub weight_decay: &'a [f64],
    pub active: &'a [u8],
}

/// One Adam step of a population (see `kd_adam_step_members` in the shim): `steps` holds
/// `params.len() * members` counts, parameter-major; `hyper`'s slices one entry per member.
pub(crate) fn adam_step_members(
    params: &[Tensor],
    exp_avg: &mut [Tensor],
    exp_avg_sq: &mut [Tensor],
    steps: &mut [i64],
    hyper: MemberHyper,
    h: AdamHyper,
) -> Result<(), String> {
    let n = params.len();
    let members = hyper.lr.len();
    assert!(members > 0, "at least one member");
    one_state_per_parameter(n, [exp_avg.len(), exp_avg_sq.len(), steps.len() / members]);
    assert!(
        steps.len() == n * members
            && hyper.weight_decay.len() == members
            && hyper.active.len() == members,
        "one count per parameter and member, one hyperparameter per member"
    );
    let params: Vec<*mut C_tensor> = params.iter().map(|t| t.as_ptr() as *mut _).collect();
    let m: Vec<*mut C_tensor> = exp_avg.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let v: Vec<*mut C_tensor> = exp_avg_sq.iter_mut().map(|t| t.as_mut_ptr()).collect();
    // SAFETY: every pointer is a live `at::Tensor` owned by a tch `Tensor` borrowed for the
    // call, the hyperparameter slices hold `members` entries and `steps` n·members; the shim
    // only assigns to the (exclusively borrowed) state tensors and updates parameters in place.
    check(unsafe {
        kd_adam_step_members(
            params.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            steps.as_mut_ptr(),
            n,
            members as i64,
            hyper.lr.as_ptr(),
            hyper.weight_decay.as_ptr(),
            hyper.active.as_ptr(),
            h.beta1,
            h.beta2,
            h.eps,
        )
    })
}

/// One capturable Adam step (see `kd_adam_step_capturable` in the shim); the state slices
/// have one allocated tensor per parameter, `skip` may be an undefined tensor.
pub(crate) fn adam_step_capturable(
    params: &[Tensor],
    exp_avg: &[Tensor],
    exp_avg_sq: &[Tensor],
    steps: &[Tensor],
    lr: &Tensor,
    skip: &Tensor,
    h: AdamHyper,
) -> Result<(), String> {
    let n = params.len();
    one_state_per_parameter(n, [exp_avg.len(), exp_avg_sq.len(), steps.len()]);
    let ptrs =
        |ts: &[Tensor]| -> Vec<*mut C_tensor> { ts.iter().map(|t| t.as_ptr() as *mut _).collect() };
    let (params, m, v, steps) = (ptrs(params), ptrs(exp_avg), ptrs(exp_avg_sq), ptrs(steps));
    let skip = if skip.defined() {
        skip.as_ptr()
    } else {
        std::ptr::null()
    };
    // SAFETY: every pointer is a live `at::Tensor` owned by a tch `Tensor` borrowed for the
    // call (`skip` may be null); the shim updates parameters and state tensors in place and
    // never reassigns them.
    check(unsafe {
        kd_adam_step_capturable(
            params.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            steps.as_ptr(),
            n,
            lr.as_ptr(),
            h.beta1,
            h.beta2,
            h.eps,
            h.weight_decay,
            skip,
        )
    })
}

/// The state of `device`'s default generator.
pub(crate) fn rng_get_state(device: Device) -> Result<Tensor, String> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: one out-pointer to a live local; on success it holds a new `at::Tensor`.
    check(unsafe { kd_rng_get_state(device_type(device), device_index(device), &mut out) })?;
    // SAFETY: a tensor the shim allocated with `new`, owned from here on by the tch `Tensor`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Sets `device`'s default generator to `state`.
pub(crate) fn rng_set_state(device: Device, state: &Tensor) -> Result<(), String> {
    // SAFETY: a live tensor borrowed for the call; the shim copies it into the generator.
    check(unsafe { kd_rng_set_state(device_type(device), device_index(device), state.as_ptr()) })
}

/// `omp_set_num_threads(threads)` for the calling thread; whether OpenMP was found.
pub(crate) fn omp_set_this_thread(threads: c_int) -> bool {
    // SAFETY: a plain value; the shim calls the OpenMP runtime's own setter, or nothing.
    unsafe { kd_omp_set_this_thread(threads) == 1 }
}

/// `signal(SIGXFSZ, SIG_IGN)`; whether it took.
pub(crate) fn ignore_sigxfsz() -> bool {
    // SAFETY: changes one signal's disposition to "ignore"; no handler code runs.
    unsafe { kd_ignore_sigxfsz() == 1 }
}

/// libtorch's deterministic algorithms only (`kd_set_deterministic` in the shim).
pub(crate) fn set_deterministic() -> Result<(), String> {
    // SAFETY: no arguments; the shim sets libtorch's global flags and, where it is unset,
    // one environment variable.
    check(unsafe { kd_set_deterministic() })
}

/// What [`pg_new`] takes.
#[derive(Debug, Clone)]
pub(crate) struct PgSpec<'a> {
    pub host: &'a str,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    pub serve_store: bool,
    pub prefix: &'a str,
    pub gloo_host: &'a str,
    pub timeout_ms: i64,
    /// NCCL on this CUDA device instead of Gloo.
    pub nccl_device: Option<usize>,
}

fn c_string(what: &str, s: &str) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(s).map_err(|_| format!("{what} {s:?} contains a NUL byte"))
}

/// A live c10d process group made by the shim: owned, freed (leaving the group) exactly
/// once when dropped, and only reachable through its methods.
#[derive(Debug)]
pub(crate) struct PgHandle(std::ptr::NonNull<KdProcessGroup>);

/// Joins a c10d Gloo process group (blocks until every rank has joined or the timeout).
pub(crate) fn pg_new(spec: &PgSpec) -> Result<PgHandle, String> {
    let host = c_string("host", spec.host)?;
    let prefix = c_string("prefix", spec.prefix)?;
    let gloo_host = c_string("Gloo host", spec.gloo_host)?;
    let int =
        |what: &str, v: usize| c_int::try_from(v).map_err(|_| format!("{what} {v} too large"));
    let mut out = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings that outlive the call, plain values, one out-pointer.
    check(unsafe {
        kd_pg_new(
            host.as_ptr(),
            c_int::from(spec.port),
            int("rank", spec.rank)?,
            int("world size", spec.world)?,
            spec.serve_store,
            prefix.as_ptr(),
            gloo_host.as_ptr(),
            spec.timeout_ms,
            match spec.nccl_device {
                Some(d) => device_int(d)?,
                None => -1,
            },
            &mut out,
        )
    })?;
    std::ptr::NonNull::new(out)
        .map(PgHandle)
        .ok_or_else(|| "the shim reported success without a process group".to_string())
}

fn pointers(tensors: &[Tensor]) -> Vec<*mut C_tensor> {
    tensors.iter().map(|t| t.as_ptr() as *mut _).collect()
}

impl PgHandle {
    /// In-place sum over ranks.
    pub(crate) fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<(), String> {
        let ptrs = pointers(tensors);
        // SAFETY: the group is live while `self` is; the tensors are live for the call and
        // updated in place: on the CPU before the shim returns, on a GPU by work the current
        // CUDA stream is made to wait for (ProcessGroupNCCL holds the tensors until then).
        check(unsafe { kd_pg_all_reduce_sum(self.0.as_ptr(), ptrs.as_ptr(), ptrs.len()) })
    }

    /// In-place broadcast from `root`.
    pub(crate) fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<(), String> {
        let ptrs = pointers(tensors);
        let root = c_int::try_from(root).map_err(|_| format!("root {root} too large"))?;
        // SAFETY: as in `all_reduce_sum`.
        check(unsafe { kd_pg_broadcast(self.0.as_ptr(), ptrs.as_ptr(), ptrs.len(), root) })
    }

    /// Waits for every rank.
    pub(crate) fn barrier(&self) -> Result<(), String> {
        // SAFETY: the group is live while `self` is.
        check(unsafe { kd_pg_barrier(self.0.as_ptr()) })
    }
}

impl Drop for PgHandle {
    /// Leaves the group and frees it.
    fn drop(&mut self) {
        // SAFETY: the pointer came from `kd_pg_new` and this is its only owner, dropped once.
        unsafe { kd_pg_free(self.0.as_ptr()) }
    }
}

/// Whether the shim was built with its CUDA part (CUDA graphs, NCCL).
pub(crate) fn cuda_built() -> bool {
    // SAFETY: no arguments; returns a constant.
    unsafe { kd_cuda_built() }
}

/// The compute capability of CUDA device `device`.
pub(crate) fn cuda_capability(device: usize) -> Result<(u32, u32), String> {
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: two out-pointers to live locals.
    check(unsafe { kd_cuda_capability(device_int(device)?, &mut major, &mut minor) })?;
    Ok((major.max(0) as u32, minor.max(0) as u32))
}

/// A Rust closure as the shim's body callback: `ctx` points at the closure; a panic or an
/// error is kept in the closure's own state and reported as non-zero.
extern "C" fn call_body<F: FnMut() -> bool>(ctx: *mut c_void) -> c_int {
    // SAFETY: `ctx` is the `&mut F` that `with_body` passed, alive for the shim call.
    let body = unsafe { &mut *(ctx as *mut F) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(true) => 0,
        _ => 1,
    }
}

fn device_int(device: usize) -> Result<c_int, String> {
    c_int::try_from(device).map_err(|_| format!("CUDA device {device} out of range"))
}

/// Runs `body` (true: it succeeded) on a side stream of CUDA device `device`; Ok(whether the
/// body succeeded), or the shim's error.
pub(crate) fn cuda_on_side_stream<F: FnMut() -> bool>(
    device: usize,
    mut body: F,
) -> Result<bool, String> {
    let mut status: c_int = 0;
    // SAFETY: the callback and its context (the closure, exclusively borrowed) live for the
    // call; the shim calls the body at most once, on this thread.
    check(unsafe {
        kd_cuda_on_side_stream(
            device_int(device)?,
            call_body::<F>,
            &mut body as *mut F as *mut c_void,
            &mut status,
        )
    })?;
    Ok(status == 0)
}

/// A captured CUDA graph: owned, freed once when dropped.
#[derive(Debug)]
pub(crate) struct GraphHandle(std::ptr::NonNull<KdCudaGraph>);

/// Captures what `body` launches on CUDA device `device`: Ok(None) where the body failed
/// (the capture was ended and dropped), Ok(Some(graph)) where it succeeded.
pub(crate) fn cuda_graph_capture<F: FnMut() -> bool>(
    device: usize,
    mut body: F,
) -> Result<Option<GraphHandle>, String> {
    let mut status: c_int = 0;
    let mut out = std::ptr::null_mut();
    // SAFETY: as in `cuda_on_side_stream`, plus one out-pointer to a live local.
    check(unsafe {
        kd_cuda_graph_capture(
            device_int(device)?,
            call_body::<F>,
            &mut body as *mut F as *mut c_void,
            &mut status,
            &mut out,
        )
    })?;
    Ok((status == 0)
        .then(|| std::ptr::NonNull::new(out).map(GraphHandle))
        .flatten())
}

impl GraphHandle {
    pub(crate) fn replay(&self) -> Result<(), String> {
        // SAFETY: a live graph this handle owns.
        check(unsafe { kd_cuda_graph_replay(self.0.as_ptr()) })
    }
}

impl Drop for GraphHandle {
    fn drop(&mut self) {
        // SAFETY: the graph was made by the shim and is freed exactly once, here.
        unsafe { kd_cuda_graph_free(self.0.as_ptr()) }
    }
}

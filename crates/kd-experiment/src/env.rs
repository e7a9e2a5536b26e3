//! `kd-cli env`: what this binary runs on: the libtorch it loaded (found in
//! `/proc/self/maps`, its version read from the `version.py` beside it), the device it
//! would use, CUDA and cuDNN availability, and libtorch's thread count.

use std::path::PathBuf;

use tch::Device;

/// The directory of the `libtorch_cpu.so` mapped into this process, if any.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
}

/// The version of the libtorch this process loaded, or `unknown`.
pub fn torch_version() -> String {
    loaded_libtorch_dir()
        .as_deref()
        .and_then(version_beside)
        .unwrap_or_else(|| "unknown".into())
}

/// The PyTorch version string from `torch/version.py` next to the loaded `torch/lib`.
fn version_beside(lib: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(lib.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__"))
        .map(|v| {
            v.trim_start_matches([' ', '='])
                .trim_matches(['\'', '"', ' '])
                .to_string()
        })
}

/// The device `auto` resolves to.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// Per-device settings made once before any work: on CUDA, cuDNN's benchmark mode (it times
/// the convolution algorithms for each input shape once and keeps the fastest; the shapes of
/// a training run repeat, so this pays after the first batches). Its choices, and the
/// nondeterministic algorithms it may choose, differ from process to process, so
/// `KD_DETERMINISTIC=1` trades that speed for GPU work that repeats to the last bit in a new
/// process (what comparing a killed and resumed run with an uninterrupted one needs):
/// deterministic algorithms only ([`kd_sys::deterministic_algorithms`]).
pub fn prepare_device(device: Device) {
    if let Device::Cuda(_) = device {
        if std::env::var("KD_DETERMINISTIC").as_deref() == Ok("1") {
            match kd_sys::deterministic_algorithms() {
                Ok(()) => tracing::info!("KD_DETERMINISTIC=1: deterministic GPU algorithms only"),
                Err(e) => tracing::warn!("KD_DETERMINISTIC=1 not applied: {e}"),
            }
        } else {
            tch::Cuda::cudnn_set_benchmark(true);
        }
    }
}

/// The process's peak resident set size in bytes (`VmHWM` of `/proc/self/status`); `None`
/// where that file does not exist (non-Linux systems).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// `VmHWM:    123456 kB` -> bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Human-readable name of a device.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Largest block glibc serves from (and keeps in) its heap: 64 MiB, above the largest
/// activation of a training step at batch 128 (the seed student's 33.5 MB), below the
/// 100 MB activations of evaluation batches of 1,000, which are returned to the system
/// after use instead of growing the heap (the quickstart's peak memory: 1,414 MiB with a
/// 1 GiB limit).
const RETAINED_BLOCK_BYTES: usize = 64 << 20;

/// Lets libtorch reuse freed activation buffers instead of mapping fresh pages every step
/// ([`kd_sys::retain_freed_memory`]) — for float32 work only: measured on the 2-core AMD
/// EPYC (docs/performance.md), it makes float32 steps 1.23–1.31x faster but the quickstart's
/// bfloat16 convolutions 9–14 % slower (glibc's own adaptive thresholds serve those better).
/// `KD_RETAIN_FREED_MEMORY=0` keeps glibc's defaults for every precision, `=1` retains for
/// every precision.
pub fn keep_freed_memory(precision: kd_models::Precision) {
    let retain = match std::env::var("KD_RETAIN_FREED_MEMORY").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => precision == kd_models::Precision::F32,
    };
    if retain && !kd_sys::retain_freed_memory(RETAINED_BLOCK_BYTES) {
        tracing::debug!("glibc refused the malloc thresholds; keeping its defaults");
    }
}

/// The environment report `kd-cli env` prints, one `name  value` line each.
pub fn env_text() -> String {
    let lib = loaded_libtorch_dir();
    let version = lib.as_deref().and_then(version_beside);
    let cudnn = if tch::Cuda::cudnn_is_available() {
        format!("true (version {})", tch::utils::version_cudnn())
    } else {
        "false".into()
    };
    // What a config that does not set it gets on the default device.
    let precision = match kd_models::auto_precision(default_device()) {
        Ok(auto) => format!(
            "{} by default ({}; set precision = \"f32\" to pin float32)",
            auto.precision.name(),
            auto.reason
        ),
        Err(e) => format!("unknown: {e}"),
    };
    let lines = [
        ("kd-cli", env!("CARGO_PKG_VERSION").to_string()),
        (
            "torch",
            version.unwrap_or_else(|| "unknown (version.py not found)".into()),
        ),
        (
            "libtorch",
            lib.map(|p| p.display().to_string())
                .unwrap_or_else(|| "not found in /proc/self/maps".into()),
        ),
        ("device", device_name(default_device())),
        (
            "cuda",
            format!(
                "{} ({} device(s))",
                tch::Cuda::is_available(),
                tch::Cuda::device_count()
            ),
        ),
        ("cudnn", cudnn),
        ("threads", tch::get_num_threads().to_string()),
        (
            "mkldnn",
            format!(
                "{}   openmp {}",
                tch::utils::has_mkldnn(),
                tch::utils::has_openmp()
            ),
        ),
        ("precision", precision),
        ("layout", "channels-last by default (faster convolutions in oneDNN and cuDNN; channels_last = false for NCHW)".into()),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{name:<14}{value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_in_kibibytes_and_grows_with_a_touched_buffer() {
        assert_eq!(
            parse_vm_hwm("VmPeak:\t  999 kB\nVmHWM:\t  2048 kB\nVmRSS: 1 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_vm_hwm("VmRSS: 1 kB\n"), None);
        let before = peak_rss_bytes().unwrap();
        let buffer = vec![1u8; 64 << 20];
        let after = peak_rss_bytes().unwrap();
        assert!(buffer.iter().map(|&b| b as u64).sum::<u64>() == 64 << 20);
        assert!(after >= before.max(64 << 20), "{before} -> {after}");
    }
}

//! The precision a device trains fastest in without giving up accuracy: bfloat16 mixed
//! precision where the hardware multiplies bfloat16 natively, float32 elsewhere.
//!
//! - x86 CPUs with AVX512-BF16 (`avx512_bf16`, e.g. AMD Zen 4, Intel Cooper Lake and later)
//!   or AMX-BF16 (`amx_bf16`, Intel Sapphire Rapids and later): oneDNN runs bfloat16
//!   convolutions on those instructions at about twice float32's speed (measured in
//!   docs/performance.md). Without them bfloat16 is emulated and slower than float32.
//!   `ONEDNN_MAX_CPU_ISA` below `AVX512_CORE_BF16` takes the instructions away from oneDNN, and
//!   then float32 is the default too.
//! - CUDA devices of compute capability 8.0 (Ampere) and up: bfloat16 tensor cores.
//!
//! bfloat16 keeps float32's exponent range, so it trains without loss scaling; parameters,
//! gradients, losses and the optimizer stay float32 ([`Precision`]).
//!
//! [`AUTO_PRECISION_VAR`] overrides the choice (`KD_AUTO_PRECISION=f32` on a bfloat16 CPU,
//! `=bf16` on another): the test suite runs once more under the other choice, so that a
//! result which holds only in the machine's default precision shows up on every machine.

use tch::Device;

use crate::precision::Precision;

/// The default precision for a device, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativePrecision {
    /// The precision `auto` picks.
    pub precision: Precision,
    /// Why (the CPU's or GPU's feature that decides it).
    pub reason: String,
}

/// The environment variable that overrides what `precision = "auto"` picks: `f32`, `bf16`
/// or `f16`.
pub const AUTO_PRECISION_VAR: &str = "KD_AUTO_PRECISION";

/// What `precision = "auto"` picks on `device`: [`AUTO_PRECISION_VAR`]'s precision where it
/// is set, else [`native_precision`]; an unknown value, or a precision libtorch cannot run
/// on `device` ([`Precision::check`]), is an error naming the variable.
pub fn auto_precision(device: Device) -> Result<NativePrecision, String> {
    let value = std::env::var(AUTO_PRECISION_VAR).ok();
    let auto = overridden(value.as_deref(), native_precision(device))?;
    if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
        auto.precision
            .check(device)
            .map_err(|e| format!("{AUTO_PRECISION_VAR}={value}: {e}"))?;
    }
    Ok(auto)
}

/// `native`, or the precision `value` (the override variable's value) names.
fn overridden(value: Option<&str>, native: NativePrecision) -> Result<NativePrecision, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(native);
    };
    match Precision::from_name(value) {
        Some(precision) => Ok(NativePrecision {
            precision,
            reason: format!(
                "{AUTO_PRECISION_VAR}={value} overrides the device's own default ({}: {})",
                native.precision, native.reason
            ),
        }),
        None => Err(format!(
            "{AUTO_PRECISION_VAR}={value:?}: expected f32, bf16 or f16 (or unset)"
        )),
    }
}

/// The default precision for `device` on this machine, from its hardware alone.
pub fn native_precision(device: Device) -> NativePrecision {
    match device {
        Device::Cuda(index) => match kd_sys::cuda_graph::cuda_capability(index) {
            Ok((major, minor)) if major >= 8 => NativePrecision {
                precision: Precision::Bf16,
                reason: format!(
                    "CUDA compute capability {major}.{minor} has bfloat16 tensor cores"
                ),
            },
            Ok((major, minor)) => NativePrecision {
                precision: Precision::F32,
                reason: format!(
                    "CUDA compute capability {major}.{minor} has no bfloat16 tensor cores"
                ),
            },
            Err(e) => NativePrecision {
                precision: Precision::F32,
                reason: format!("the GPU's compute capability is unknown ({e})"),
            },
        },
        Device::Cpu => {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let max_isa = std::env::var("ONEDNN_MAX_CPU_ISA").ok();
            cpu_precision(&cpuinfo, max_isa.as_deref())
        }
        _ => NativePrecision {
            precision: Precision::F32,
            reason: "no native bfloat16 known for this device".into(),
        },
    }
}

/// The CPU's default from its `/proc/cpuinfo` flags and oneDNN's ISA limit.
pub fn cpu_precision(cpuinfo: &str, onednn_max_isa: Option<&str>) -> NativePrecision {
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let native = ["amx_bf16", "avx512_bf16"]
        .into_iter()
        .find(|f| flags.contains(f));
    let Some(flag) = native else {
        return NativePrecision {
            precision: Precision::F32,
            reason: "this CPU has neither AVX512-BF16 nor AMX-BF16 (bfloat16 would be emulated)"
                .into(),
        };
    };
    if let Some(isa) = onednn_max_isa.filter(|isa| !onednn_isa_has_bf16(isa)) {
        return NativePrecision {
            precision: Precision::F32,
            reason: format!("ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN off the CPU's {flag}"),
        };
    }
    NativePrecision {
        precision: Precision::Bf16,
        reason: format!("this CPU has {flag} (native bfloat16 dot products in oneDNN)"),
    }
}

/// Whether oneDNN's ISA limit `isa` (its names: `AVX2`, `AVX512_CORE`, `AVX512_CORE_BF16`,
/// `AVX512_CORE_AMX`, `AVX10_1_512`, ..., `ALL`, `DEFAULT`) includes bfloat16 instructions.
fn onednn_isa_has_bf16(isa: &str) -> bool {
    let isa = isa.trim().to_ascii_uppercase();
    isa.is_empty()
        || isa == "ALL"
        || isa == "DEFAULT"
        || isa.contains("BF16")
        || isa.contains("AMX")
        || isa.contains("FP16")
        || isa.starts_with("AVX10")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: &str = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n";
    const SKYLAKE: &str = "flags\t\t: fpu sse2 avx2 avx512f avx512bw\n";
    const SAPPHIRE: &str = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n";

    #[test]
    fn the_override_variable_replaces_the_hardware_choice_and_rejects_unknown_names() {
        let native = || cpu_precision(ZEN4, None);
        assert_eq!(overridden(None, native()).unwrap(), native());
        assert_eq!(overridden(Some(" "), native()).unwrap(), native());
        let forced = overridden(Some("f32"), native()).unwrap();
        assert_eq!(forced.precision, Precision::F32);
        assert!(
            forced.reason.contains("KD_AUTO_PRECISION=f32"),
            "{}",
            forced.reason
        );
        assert!(forced.reason.contains("bf16"), "{}", forced.reason);
        let on_skylake = overridden(Some("bf16"), cpu_precision(SKYLAKE, None)).unwrap();
        assert_eq!(on_skylake.precision, Precision::Bf16);
        let bad = overridden(Some("fp8"), native()).unwrap_err();
        assert!(
            bad.contains("KD_AUTO_PRECISION=\"fp8\"") && bad.contains("bf16"),
            "{bad}"
        );
    }

    #[test]
    fn bf16_where_the_cpu_has_it_and_onednn_may_use_it() {
        let zen4 = cpu_precision(ZEN4, None);
        assert_eq!(zen4.precision, Precision::Bf16);
        assert!(zen4.reason.contains("avx512_bf16"), "{}", zen4.reason);
        assert!(cpu_precision(SAPPHIRE, None).reason.contains("amx_bf16"));
        assert_eq!(cpu_precision(SKYLAKE, None).precision, Precision::F32);
        assert_eq!(cpu_precision("", None).precision, Precision::F32);
        for isa in ["AVX2", "avx512_core", "AVX512_CORE_VNNI"] {
            let limited = cpu_precision(ZEN4, Some(isa));
            assert_eq!(limited.precision, Precision::F32, "{isa}");
            assert!(limited.reason.contains(isa), "{}", limited.reason);
        }
        for isa in ["AVX512_CORE_BF16", "avx512_core_amx", "ALL", "AVX10_1_512"] {
            assert_eq!(
                cpu_precision(ZEN4, Some(isa)).precision,
                Precision::Bf16,
                "{isa}"
            );
        }
    }
}

//! `cargo xtask test --precision-guard`: the tests whose runs use `precision = "auto"`, run
//! again under the precisions `auto` does not pick on this machine.
//!
//! `auto` is bf16 on CPUs with AVX512-BF16 or AMX-BF16 and f32 elsewhere, and bf16 kernels
//! round differently from one CPU generation to the next. A test that compares a bf16 result
//! with an f32 one for equality can pass on the machine it was written on and fail on
//! another. Here each such test also runs
//! - with `auto` forced to f32 (`KD_AUTO_PRECISION=f32`) where the CPU has native bf16;
//! - with `auto` forced to bf16 on another kernel path than the machine's default: oneDNN
//!   limited to AVX-512 without its bf16 instructions (`ONEDNN_MAX_CPU_ISA=AVX512_CORE`),
//!   where bf16 convolutions are emulated and round as on a CPU without native bf16. This
//!   needs AVX-512 (BW, VL, DQ), which libtorch requires of any bf16 convolution on a CPU;
//!   without it bf16 cannot run at all, and the pass is left out with a note.
//!
//! The CPU is read from `/proc/cpuinfo`; xtask links no libtorch.

/// The tests whose runs resolve `precision = "auto"`: the modules of kd-cli's test binary
/// that run `kd-cli run` without pinning a precision and compare its numbers with `eval`,
/// exports, PyTorch and resumed runs (the data-parallel ones pin float32; the others check
/// errors). As `cargo test` arguments, with `--workspace` so that the suite's build is
/// reused.
pub const PRECISION_SENSITIVE: &[&str] = &[
    "--workspace",
    "--no-fail-fast",
    "--test",
    "kd_cli",
    "--",
    "cli::",
    "onnx_export::",
    "image_folder::",
    "first_hour::",
    "resume::",
    "transfer_set::",
    "seed_pipeline::",
    "resource_faults::",
];

/// One extra run of the precision-sensitive tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// What it forces, in words.
    pub label: &'static str,
    /// Environment variables set for it.
    pub env: Vec<(&'static str, &'static str)>,
}

/// The passes for a CPU with `cpuinfo` (the text of `/proc/cpuinfo`), and a note on what
/// cannot be run on it.
pub fn passes(cpuinfo: &str) -> (Vec<Pass>, Option<&'static str>) {
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    let native_bf16 = has("avx512_bf16") || has("amx_bf16");
    let any_bf16 = has("avx512bw") && has("avx512vl") && has("avx512dq");
    let mut out = Vec::new();
    if native_bf16 {
        out.push(Pass {
            label: "auto forced to f32 (this CPU's default is bf16)",
            env: vec![("KD_AUTO_PRECISION", "f32")],
        });
    }
    if !any_bf16 {
        return (
            out,
            Some(
                "no bf16 pass: libtorch runs bf16 convolutions only on CPUs with AVX-512 BW/VL/DQ",
            ),
        );
    }
    out.push(Pass {
        label: "auto forced to bf16, emulated (oneDNN without bf16 instructions)",
        env: vec![
            ("KD_AUTO_PRECISION", "bf16"),
            ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"),
        ],
    });
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: &str =
        "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16\n";
    const SAPPHIRE: &str =
        "flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile\n";
    const SKYLAKE: &str = "flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl\n";
    const HASWELL: &str = "flags\t\t: avx avx2 fma\n";

    fn forced(cpuinfo: &str) -> Vec<&'static str> {
        passes(cpuinfo)
            .0
            .iter()
            .map(|p| {
                p.env
                    .iter()
                    .find(|(k, _)| *k == "KD_AUTO_PRECISION")
                    .unwrap()
                    .1
            })
            .collect()
    }

    #[test]
    fn each_cpu_also_runs_the_precisions_auto_does_not_pick_there() {
        assert_eq!(forced(ZEN4), ["f32", "bf16"]);
        assert_eq!(forced(SAPPHIRE), ["f32", "bf16"]);
        assert_eq!(forced(SKYLAKE), ["bf16"]);
        assert_eq!(forced(HASWELL), Vec::<&str>::new());
        assert!(passes(HASWELL).1.unwrap().contains("AVX-512"));
        assert!(passes(ZEN4).1.is_none());
        // bf16 on a native-bf16 CPU runs on the other (emulated) kernels.
        let (zen4, _) = passes(ZEN4);
        assert!(zen4[1].env.contains(&("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")));
    }
}

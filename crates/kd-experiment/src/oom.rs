//! Running out of memory ends a run with a clear error instead of a crash. libtorch reports a
//! failed allocation (`DefaultCPUAllocator: not enough memory`, `CUDA out of memory`) as a
//! C++ exception, which tch turns into a panic in the middle of whatever tensor operation
//! asked for the memory; [`guard`] catches that panic around each phase of a run (and at the
//! command's top), and the error names what that phase was doing and where its checkpoints
//! are. Every
//! checkpoint is written atomically, so the last good one is intact and `--resume` can
//! continue from it once memory is freed or `batch_size` lowered. Other panics are not
//! caught: they are bugs and keep their backtrace.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, Result};

/// Whether a panic message is libtorch's failed allocation.
pub fn is_out_of_memory(message: &str) -> bool {
    [
        "not enough memory",
        "out of memory",
        "can't allocate memory",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Keeps the default panic report for every panic except a failed allocation, which
/// [`guard`] reports itself.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_out_of_memory(&payload_text(info.payload())) {
            default(info);
        }
    }));
}

/// Runs `f`, which does `activity` (`training the teacher`, ...); a failed allocation inside
/// it becomes an error naming the activity, libtorch's message (its first line) and, for a
/// training run, `checkpoints` (where the last good state is). Guards nest: the innermost
/// names the activity.
pub fn guard<T>(
    activity: &str,
    checkpoints: Option<&str>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload_text(payload.as_ref());
            if !is_out_of_memory(&message) {
                std::panic::resume_unwind(payload);
            }
            let first = allocator_message(&message);
            Err(match checkpoints {
                Some(dir) => anyhow!(
                    "out of memory while {activity}: {first}; the checkpoints of completed epochs are intact in {dir}: free memory or lower batch_size, then continue with --resume"
                ),
                None => anyhow!("out of memory while {activity}: {first}"),
            })
        }
    }
}

/// libtorch's own sentence from a panic message: tch's `Torch("...")` wraps it between an
/// `[enforce fail ...]` prefix and a C++ backtrace (with escaped newlines).
fn allocator_message(message: &str) -> &str {
    let start = ["DefaultCPUAllocator", "CUDA out of memory", "out of memory"]
        .iter()
        .find_map(|m| message.find(m))
        .unwrap_or(0);
    let rest = &message[start..];
    let end = ["\\n", "\n", "\")"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    rest[..end].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_allocation_becomes_an_error_and_other_panics_stay_panics() {
        let err = guard("testing", Some("runs/x/checkpoints"), || -> Result<()> {
            // 2^50 floats: more than any machine's address space allows.
            let _ = tch::Tensor::zeros([1 << 50], (tch::Kind::Float, tch::Device::Cpu));
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("out of memory while testing: DefaultCPUAllocator: "),
            "{err}"
        );
        assert!(!err.contains("frame #") && !err.contains("Torch("), "{err}");
        assert!(err.contains("you tried to allocate"), "{err}");
        assert!(err.contains("runs/x/checkpoints"), "{err}");
        let bug = || guard("testing", None, || -> Result<()> { panic!("a bug") });
        let other = std::panic::catch_unwind(bug);
        assert!(other.is_err(), "a bug is not an out-of-memory error");
    }
}

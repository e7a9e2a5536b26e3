//! Batch-1 latency, what a deployed classifier answering one request at a time costs: the
//! median and the 99th percentile of [`CALLS`] calls after [`WARMUP`] untimed ones, on one
//! thread and on all of libtorch's threads, and throughput at batch 256. `kd-cli run` puts
//! them in every model's report; `kd-cli bench --mode latency` measures saved and exported
//! models side by side.

use std::time::Instant;

use kd_models::Model;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Timed calls per measurement (at least 200, for a meaningful 99th percentile).
pub const CALLS: usize = 200;
/// Untimed calls first (allocator, kernel selection, caches).
pub const WARMUP: usize = 20;

/// Median and 99th percentile of call times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median call time, in milliseconds.
    pub median_ms: f64,
    /// 99th percentile of the call times, in milliseconds.
    pub p99_ms: f64,
}

impl Latency {
    /// Times `calls` calls of `call` after `warmup` untimed ones.
    ///
    /// ```
    /// use kd_experiment::latency::Latency;
    ///
    /// let mut calls = 0;
    /// let l = Latency::measure(|| calls += 1, 5, 100);
    /// assert_eq!(calls, 105);
    /// assert!(0.0 <= l.median_ms && l.median_ms <= l.p99_ms);
    /// ```
    pub fn measure(mut call: impl FnMut(), warmup: usize, calls: usize) -> Self {
        for _ in 0..warmup {
            call();
        }
        let mut ms: Vec<f64> = (0..calls.max(1))
            .map(|_| {
                let start = Instant::now();
                call();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let p99 = ((0.99 * ms.len() as f64) as usize).min(ms.len() - 1);
        Self {
            median_ms: ms[ms.len() / 2],
            p99_ms: ms[p99],
        }
    }
}

/// A model's batch-1 latency on one thread and on all threads, and its batch-256 throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelLatency {
    /// Batch-1 latency on one thread.
    pub one_thread: Latency,
    /// Batch-1 latency on all threads ([`ModelLatency::threads`]).
    pub all_threads: Latency,
    /// How many threads "all" is.
    pub threads: usize,
    /// Throughput at batch 256, in images per second.
    pub batch256_images_per_s: f64,
}

impl ModelLatency {
    /// `self`'s speedup over `slower` (ratio of medians): `(one thread, all threads)`.
    pub fn speedup_over(&self, slower: &ModelLatency) -> (f64, f64) {
        (
            slower.one_thread.median_ms / self.one_thread.median_ms,
            slower.all_threads.median_ms / self.all_threads.median_ms,
        )
    }
}

/// Runs `forward` on a single input of `shape` (`[c, h, w]`, what the model takes) and on
/// 256 of them, with libtorch's thread count set to 1 and then back to its value; on CUDA
/// every call waits for the device.
pub fn measure_forward(
    shape: [i64; 3],
    device: Device,
    forward: impl Fn(&Tensor) -> Tensor,
) -> ModelLatency {
    let [c, h, w] = shape;
    // Fixed inputs, not random ones: timing must not draw from the generator that seeds
    // the rest of a run.
    let images = |n: i64| {
        Tensor::linspace(0.0, 1.0, n * c * h * w, (Kind::Float, device)).view([n, c, h, w])
    };
    let (one, batch) = (images(1), images(256));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let call = |x: &Tensor| {
        let _ = tch::no_grad(|| forward(x));
        sync();
    };
    let threads = tch::get_num_threads().max(1) as usize;
    tch::set_num_threads(1);
    let one_thread = Latency::measure(|| call(&one), WARMUP, CALLS);
    tch::set_num_threads(threads as i32);
    let all_threads = Latency::measure(|| call(&one), WARMUP, CALLS);
    let batch256 = Latency::measure(|| call(&batch), 1, 5);
    ModelLatency {
        one_thread,
        all_threads,
        threads,
        batch256_images_per_s: 256.0 / (batch256.median_ms / 1e3),
    }
}

/// [`measure_forward`] of a model in evaluation mode on its own device.
pub fn model_latency(model: &Model, shape: [i64; 3]) -> ModelLatency {
    let device = model.var_store().device();
    measure_forward(shape, device, |x| model.forward_t(x, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_p99_are_order_statistics_of_the_calls() {
        // Calls that sleep 0..200 µs in a known order: median ≈ 100 µs, p99 ≈ 198 µs, and
        // sleeping never takes less than asked.
        let mut i = 0u64;
        let l = Latency::measure(
            || {
                std::thread::sleep(std::time::Duration::from_micros((i * 37) % 200));
                i += 1;
            },
            0,
            200,
        );
        assert!(l.median_ms >= 0.1 && l.p99_ms >= 0.198, "{l:?}");
        assert!(l.p99_ms >= l.median_ms);
    }

    #[test]
    fn speedups_are_ratios_of_medians() {
        let l = |m: f64| Latency {
            median_ms: m,
            p99_ms: 2.0 * m,
        };
        let fast = ModelLatency {
            one_thread: l(1.0),
            all_threads: l(0.5),
            threads: 2,
            batch256_images_per_s: 1.0,
        };
        let slow = ModelLatency {
            one_thread: l(6.0),
            all_threads: l(2.0),
            ..fast
        };
        assert_eq!(fast.speedup_over(&slow), (6.0, 4.0));
    }
}

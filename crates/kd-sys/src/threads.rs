//! Keeping helper threads out of libtorch's intra-op thread pool.
//!
//! libtorch (the PyPI build) parallelises its CPU kernels with OpenMP (GNU libgomp), whose
//! team size is a per-thread setting. A helper thread that runs tensor operations (a batch
//! loader) gets a team of its own, as large as the machine, and then libgomp manages more
//! threads than there are CPUs. When it does, it stops letting idle team threads spin before
//! they sleep (its throttled spin count), so every one of the thousands of small parallel
//! regions of a training step has to wake its workers through the kernel (`futex`): on a
//! 2-core machine that cost the training thread 12-16 % of its speed (docs/performance.md).
//! A helper whose own work is small runs it on one thread instead: [`single_threaded_ops`].

use crate::ffi;

/// Makes the tensor operations of the calling thread run on that thread alone (OpenMP team
/// size 1 for this thread; other threads keep theirs); returns whether the OpenMP runtime
/// was found (a libtorch built without OpenMP has no team to limit).
pub fn single_threaded_ops() -> bool {
    // libtorch sets a thread's team size from its global setting on the thread's first
    // parallel operation (`lazy_init_num_threads`); that happens here first, so that it
    // does not undo the setting below later.
    let _ = tch::get_num_threads();
    ffi::omp_set_this_thread(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_thread_runs_single_threaded_and_the_caller_keeps_its_threads() {
        tch::set_num_threads(2);
        let before = tch::get_num_threads();
        let (found, inside) = std::thread::spawn(|| {
            let found = single_threaded_ops();
            // A parallel operation after it keeps the thread at one.
            let _ = tch::Tensor::ones([1 << 16], (tch::Kind::Float, tch::Device::Cpu))
                .sum(tch::Kind::Float);
            (found, tch::get_num_threads())
        })
        .join()
        .unwrap();
        assert!(found, "libtorch's OpenMP runtime not found");
        assert_eq!(inside, 1, "the helper thread still has a team");
        assert_eq!(
            tch::get_num_threads(),
            before,
            "the calling thread's setting changed"
        );
    }
}

//! Observing a training run as it goes, for progress displays: [`fit_with`] calls a
//! [`Progress`] at the start of each epoch, after each batch, and at the end of the epoch.
//! The library draws nothing itself; `kd-cli` draws a terminal progress bar or prints
//! plain lines (Keras' `fit(verbose=1)` and `verbose=2`).
//!
//! [`fit_with`]: crate::fit_with

use crate::metrics::EpochMetrics;

/// Receives a training run's progress. Every method has a do-nothing default.
pub trait Progress {
    /// Epoch `epoch` of `epochs` of `phase` begins, with `batches` batches.
    fn epoch_start(&mut self, _phase: &str, _epoch: usize, _epochs: usize, _batches: usize) {}

    /// Batch `done` (1-based) has been trained; `running` reads the epoch's mean loss and
    /// accuracy so far from the device (a synchronisation: call it only to show them).
    fn batch(&mut self, _done: usize, _running: &dyn Fn() -> (f64, f64)) {}

    /// The epoch ended (validation included) with these metrics.
    fn epoch_end(&mut self, _phase: &str, _metrics: &EpochMetrics) {}
}

/// Observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

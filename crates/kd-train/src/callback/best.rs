//! The best epoch so far, by one rule: Keras' `monitor_op(current - min_delta, best)` on the
//! run's monitored metric (early stopping's `monitor` and `min_delta`). The best checkpoint,
//! the weights early stopping keeps and restores, and the log lines all read it from here.

use serde::{Deserialize, Serialize};

use super::Monitor;
use crate::metrics::EpochMetrics;

/// The best monitored value so far and the epoch that reached it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestTracker {
    monitor: Monitor,
    min_delta: f64,
    #[serde(with = "crate::json_float")]
    best: f64,
    best_epoch: usize,
}

impl BestTracker {
    /// No epoch yet: the first finite value improves.
    pub fn new(monitor: Monitor, min_delta: f64) -> Self {
        Self {
            best: monitor.worst(),
            monitor,
            min_delta,
            best_epoch: 0,
        }
    }

    /// Takes epoch `m` into account; returns whether it is the new best.
    pub fn update(&mut self, m: &EpochMetrics) -> bool {
        let current = self.monitor.value(m);
        let improved = self.monitor.improves(current, self.best, self.min_delta);
        if improved {
            self.best = current;
            self.best_epoch = m.epoch;
        }
        improved
    }

    /// The metric it watches.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The best monitored value (the monitor's worst before any epoch).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// The 1-based best epoch (0 before any epoch).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::test_support::history_of;

    #[test]
    fn improvements_follow_min_delta_and_the_monitors_direction() {
        let mut loss = BestTracker::new(Monitor::val_loss(), 1e-4);
        let h = history_of(&[1.0, 0.99995, 0.9, 0.95]);
        let got: Vec<bool> = h.epochs.iter().map(|m| loss.update(m)).collect();
        assert_eq!(got, [true, false, true, false]);
        assert_eq!((loss.best(), loss.best_epoch()), (0.9, 3));

        let mut accuracy = BestTracker::new(Monitor::val_accuracy(), 0.0);
        let mut m = h.epochs[0].clone();
        m.val_accuracy = 0.5;
        assert!(accuracy.update(&m));
        m.val_accuracy = 0.4;
        assert!(!accuracy.update(&m), "a lower accuracy is no improvement");
    }
}

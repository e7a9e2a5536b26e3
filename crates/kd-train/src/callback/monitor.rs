//! The quantity a callback watches, with Keras' `mode="auto"`: losses are minimized,
//! accuracies maximized.

use serde::{Deserialize, Serialize};

use crate::metrics::EpochMetrics;

/// A monitored metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    ValLoss,
    ValAccuracy,
}

impl Monitor {
    /// The metric's name as configs and logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ValLoss => "val_loss",
            Self::ValAccuracy => "val_accuracy",
        }
    }

    /// The monitored value of an epoch.
    pub fn value(self, m: &EpochMetrics) -> f64 {
        match self {
            Self::ValLoss => m.val_loss,
            Self::ValAccuracy => m.val_accuracy,
        }
    }

    /// Whether `current` improves on `best` by more than `min_delta` (Keras: `np.less(current,
    /// best - min_delta)` for minimized metrics, `np.greater(current, best + min_delta)`
    /// for maximized ones).
    pub fn improves(self, current: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Self::ValLoss => current < best - min_delta,
            Self::ValAccuracy => current > best + min_delta,
        }
    }

    /// The starting "best" value: +inf for minimized metrics, -inf for maximized ones.
    pub fn worst(self) -> f64 {
        match self {
            Self::ValLoss => f64::INFINITY,
            Self::ValAccuracy => f64::NEG_INFINITY,
        }
    }
}

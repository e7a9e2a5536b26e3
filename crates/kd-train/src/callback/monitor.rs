//! The quantity a callback watches, with Keras' `mode="auto"`: losses are minimized,
//! accuracies maximized.

use serde::{Deserialize, Serialize};

use crate::metrics::EpochMetrics;

/// A monitored metric, by the name [`EpochMetrics::value`] reads: `loss`, `accuracy`,
/// `val_loss`, `val_accuracy`, `val_cross_entropy`, `lr`, or a named loss term
/// (`student_loss`, `distillation_loss`, ...). As in Keras' `mode="auto"`, a name with
/// `acc` in it is maximized and every other one minimized. It reads and writes as its name.
///
/// ```
/// use kd_train::callback::Monitor;
///
/// let ce = Monitor::new("val_cross_entropy");
/// assert!(ce.improves(0.4, 0.5, 0.01) && !ce.improves(0.495, 0.5, 0.01));
/// assert!(Monitor::val_accuracy().improves(0.9, 0.8, 0.0));
/// let read: Monitor = serde_json::from_str("\"val_loss\"").unwrap();
/// assert_eq!(read, Monitor::val_loss());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Monitor {
    name: String,
}

impl From<String> for Monitor {
    fn from(name: String) -> Self {
        Self { name }
    }
}

impl From<Monitor> for String {
    fn from(m: Monitor) -> Self {
        m.name
    }
}

impl Monitor {
    /// The metric called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The validation loss (of the fit's objective).
    pub fn val_loss() -> Self {
        Self::new("val_loss")
    }

    /// The validation accuracy.
    pub fn val_accuracy() -> Self {
        Self::new("val_accuracy")
    }

    /// The metric's name as configs and logs spell it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether larger values are better (Keras' `auto`: names with `acc` in them).
    pub fn maximizes(&self) -> bool {
        self.name.contains("acc")
    }

    /// The monitored value of an epoch (NaN where the epoch has no such metric, which
    /// never improves anything; a fit checks the name against its first epoch).
    pub fn value(&self, m: &EpochMetrics) -> f64 {
        m.value(&self.name).unwrap_or(f64::NAN)
    }

    /// Whether `current` improves on `best` by more than `min_delta` (Keras: `np.less(current,
    /// best - min_delta)` for minimized metrics, `np.greater(current, best + min_delta)`
    /// for maximized ones).
    pub fn improves(&self, current: f64, best: f64, min_delta: f64) -> bool {
        if self.maximizes() {
            current > best + min_delta
        } else {
            current < best - min_delta
        }
    }

    /// The starting "best" value: +inf for minimized metrics, -inf for maximized ones.
    pub fn worst(&self) -> f64 {
        if self.maximizes() {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    }
}

//! Per-epoch metrics and their history: what callbacks decide on and what reports print.

use serde::Serialize;

/// Metrics of one epoch. Losses are means over images; accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Serialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// Learning rate of the epoch's last step (schedules move it within an epoch).
    pub lr: f64,
    /// Named loss terms (e.g. `student_loss`, `distillation_loss`), training means.
    pub parts: Vec<(String, f64)>,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
    /// Training images per second.
    pub train_images_per_s: f64,
}

/// All epochs run so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub epochs: Vec<EpochMetrics>,
}

impl History {
    /// The latest epoch, if any.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }
}

/// Sums of a per-image quantity, turned into a mean at the end of an epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunningMean {
    sum: f64,
    count: usize,
}

impl RunningMean {
    /// Adds a batch whose mean value is `batch_mean` over `n` images.
    pub(crate) fn add(&mut self, batch_mean: f64, n: usize) {
        self.sum += batch_mean * n as f64;
        self.count += n;
    }

    /// The mean over every image added (0 when none was).
    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

//! Per-epoch metrics and their history: what callbacks decide on and what reports print.

use kd_core::LossParts;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Metrics of one epoch. Losses are means over images; accuracies are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss of the objective over the epoch's counted steps.
    #[serde(with = "crate::json_float")]
    pub loss: f64,
    /// Training top-1 accuracy (labelled images), in [0, 1].
    #[serde(with = "crate::json_float")]
    pub accuracy: f64,
    /// Mean validation loss of the objective.
    #[serde(with = "crate::json_float")]
    pub val_loss: f64,
    /// Validation top-1 accuracy, in [0, 1].
    #[serde(with = "crate::json_float")]
    pub val_accuracy: f64,
    /// Cross-entropy against the validation labels, whatever the objective: the quantity
    /// that compares a distilled student with a scratch one (NaN in checkpoints written
    /// before it was recorded).
    #[serde(with = "crate::json_float", default = "not_recorded")]
    pub val_cross_entropy: f64,
    /// Learning rate of the epoch's last step (schedules move it within an epoch).
    #[serde(with = "crate::json_float")]
    pub lr: f64,
    /// Named loss terms (e.g. `student_loss`, `distillation_loss`), training means.
    pub parts: Vec<(String, f64)>,
    /// Wall time of the epoch (training and validation).
    #[serde(with = "crate::json_float")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(with = "crate::json_float")]
    pub train_images_per_s: f64,
    /// The caller's registered metrics ([`crate::metric::Metric`]) on the validation
    /// images, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<(String, f64)>,
}

impl EpochMetrics {
    /// The metric called `name`: `loss`, `accuracy`, `val_loss`, `val_accuracy`,
    /// `val_cross_entropy`, `lr`, a named loss term or a registered metric; `None` for any
    /// other name.
    pub fn value(&self, name: &str) -> Option<f64> {
        let fixed = match name {
            "loss" => Some(self.loss),
            "accuracy" => Some(self.accuracy),
            "val_loss" => Some(self.val_loss),
            "val_accuracy" => Some(self.val_accuracy),
            "val_cross_entropy" => Some(self.val_cross_entropy),
            "lr" => Some(self.lr),
            _ => None,
        };
        let mut named = self.parts.iter().chain(&self.metrics);
        fixed.or_else(|| named.find(|(n, _)| n == name).map(|(_, v)| *v))
    }

    /// Every name [`EpochMetrics::value`] answers for this epoch.
    pub fn names(&self) -> Vec<String> {
        let fixed = Self::built_in_names();
        let mut names: Vec<String> = fixed.iter().map(|n| n.to_string()).collect();
        names.extend(
            self.parts
                .iter()
                .chain(&self.metrics)
                .map(|(n, _)| n.clone()),
        );
        names
    }
}

impl EpochMetrics {
    /// The names every epoch has.
    pub fn built_in_names() -> [&'static str; 6] {
        [
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "val_cross_entropy",
            "lr",
        ]
    }
}

fn not_recorded() -> f64 {
    f64::NAN
}

/// All epochs run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Every epoch run, in order (a resumed fit's included).
    pub epochs: Vec<EpochMetrics>,
}

impl History {
    /// The latest epoch, if any.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }
}

/// Per-image sums of an epoch's loss, loss terms and correct predictions, kept as tensors on
/// the model's device: adding a batch queues a few device ops and never waits for them, so a
/// GPU step has no host synchronisation; [`DeviceSums::read`] syncs once per epoch.
#[derive(Debug, Default)]
pub(crate) struct DeviceSums {
    loss: Option<Tensor>,
    hits: Option<Tensor>,
    /// Images with a label (a transfer set's have none): what accuracy is a fraction of.
    labelled: Option<Tensor>,
    parts: Vec<(&'static str, Option<Tensor>)>,
    images: usize,
}

/// What [`DeviceSums::read`] returns: means over images, and counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EpochSums {
    pub(crate) loss: f64,
    pub(crate) hits: i64,
    pub(crate) images: usize,
    pub(crate) labelled: usize,
    pub(crate) parts: Vec<(String, f64)>,
}

impl EpochSums {
    /// Fraction of the labelled images predicted correctly (0 when there were none).
    pub(crate) fn accuracy(&self) -> f64 {
        self.hits as f64 / self.labelled.max(1) as f64
    }
}

/// `sum += value` for an optional running sum.
pub(crate) fn accumulate(sum: &mut Option<Tensor>, value: Tensor) {
    *sum = Some(match sum.take() {
        Some(s) => s + value,
        None => value,
    });
}

impl DeviceSums {
    /// Adds one batch: its `logits`, `labels` and loss (batch means).
    pub(crate) fn add(&mut self, logits: &Tensor, labels: &Tensor, out: &LossParts) {
        let b = labels.size()[0];
        tch::no_grad(|| {
            let weighted = |t: &Tensor| t.detach().to_kind(Kind::Double) * b as f64;
            accumulate(&mut self.loss, weighted(&out.total));
            let hits = logits.argmax(-1, false).eq_tensor(labels).sum(Kind::Int64);
            accumulate(&mut self.hits, hits);
            accumulate(&mut self.labelled, labels.ge(0).sum(Kind::Int64));
            for (i, (name, value)) in out.parts.iter().enumerate() {
                if self.parts.len() <= i {
                    self.parts.push((name, None));
                }
                accumulate(&mut self.parts[i].1, weighted(value));
            }
        });
        self.images += b as usize;
    }

    /// The means over every image added (0 when none was); reads the device.
    pub(crate) fn read(&self) -> EpochSums {
        let n = self.images.max(1) as f64;
        let value = |t: &Option<Tensor>| t.as_ref().map_or(0.0, |t| t.double_value(&[]));
        EpochSums {
            loss: value(&self.loss) / n,
            hits: self.hits.as_ref().map_or(0, |t| t.int64_value(&[])),
            images: self.images,
            labelled: self
                .labelled
                .as_ref()
                .map_or(0, |t| t.int64_value(&[]) as usize),
            parts: self
                .parts
                .iter()
                .map(|(k, t)| (k.to_string(), value(t) / n))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_recorded_before_the_validation_cross_entropy_still_load() {
        // An epoch as checkpoints written before `val_cross_entropy` existed hold it.
        let old = r#"{"epoch": 3, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6,
            "val_accuracy": 0.75, "lr": 0.001, "parts": [], "seconds": 1.0,
            "train_images_per_s": 100.0}"#;
        let m: EpochMetrics = serde_json::from_str(old).unwrap();
        assert_eq!((m.epoch, m.val_loss), (3, 0.6));
        assert!(m.val_cross_entropy.is_nan());
        // And it round-trips once recorded.
        let again: EpochMetrics = serde_json::from_str(
            &serde_json::to_string(&EpochMetrics {
                val_cross_entropy: 0.25,
                ..m
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(again.val_cross_entropy, 0.25);
    }

    #[test]
    fn sums_are_weighted_by_batch_size() {
        let mut sums = DeviceSums::default();
        let logits = Tensor::from_slice2(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 0.0]]);
        let parts = |total: f64, term: f64| LossParts {
            total: Tensor::from(total),
            parts: vec![("term", Tensor::from(term))],
        };
        // A batch of 3 (2 correct) with mean loss 1, then a batch of 1 (correct) with 3.
        sums.add(
            &logits,
            &Tensor::from_slice(&[0i64, 1, 1]),
            &parts(1.0, 2.0),
        );
        sums.add(
            &logits.narrow(0, 0, 1),
            &Tensor::from_slice(&[0i64]),
            &parts(3.0, 6.0),
        );
        let read = sums.read();
        assert_eq!((read.hits, read.images), (3, 4));
        assert!((read.loss - 1.5).abs() < 1e-12, "{}", read.loss);
        assert_eq!(read.parts, vec![("term".to_string(), 3.0)]);
        assert_eq!(DeviceSums::default().read().loss, 0.0);
    }
}

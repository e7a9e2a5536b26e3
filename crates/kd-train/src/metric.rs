//! Metrics a caller registers by name, as burn's learner registers metrics and Keras'
//! `compile(metrics=...)` does: each is computed on the validation images after every epoch,
//! recorded in the epoch's [`EpochMetrics`](crate::EpochMetrics) under its name, and can be
//! monitored by early stopping, ReduceLROnPlateau and the best checkpoint (maximized when
//! its name holds `acc`, as Keras' `mode="auto"` decides).
//!
//! A metric is a sum over a batch's images, summed over the validation batches on the device
//! and divided by their image count once: the mean over images. Registered metrics cost one
//! more inference pass over the validation batches per epoch.

use kd_models::Network;
use tch::{Kind, Tensor};

use crate::batches::BatchSource;
use crate::error::{Result, TrainError};
use crate::metrics::{accumulate, EpochMetrics};

/// A validation metric: a name and a per-batch sum.
///
/// ```
/// use kd_train::metric::Metric;
/// use tch::{Kind, Tensor};
///
/// /// The fraction of images predicted as class `k`.
/// struct Predicts(i64, String);
///
/// impl Metric for Predicts {
///     fn name(&self) -> &str {
///         &self.1
///     }
///     fn batch_sum(&self, logits: &Tensor, _labels: &Tensor) -> Tensor {
///         logits.argmax(-1, false).eq(self.0).sum(Kind::Float)
///     }
/// }
///
/// let zeros = Predicts(0, "val_predicts_0".into());
/// let logits = Tensor::from_slice2(&[[2.0f32, 1.0], [0.0, 1.0], [5.0, 1.0]]);
/// let labels = Tensor::from_slice(&[0i64, 1, 1]);
/// assert_eq!(zeros.batch_sum(&logits, &labels).double_value(&[]), 2.0);
/// ```
pub trait Metric {
    /// The name it is recorded and monitored under, e.g. `val_top2_accuracy`.
    fn name(&self) -> &str;

    /// The metric summed over one batch's images, as a 0-dim float tensor on the logits'
    /// device: `logits` `[b, classes]` (float32) and `labels` `[b]` (i64, -1 unlabeled).
    fn batch_sum(&self, logits: &Tensor, labels: &Tensor) -> Tensor;
}

/// A metric from a closure.
///
/// ```
/// use kd_train::metric::{metric_fn, Metric};
/// use tch::{Kind, Tensor};
///
/// // The mean largest probability: how sure the model is.
/// let confidence = metric_fn("val_confidence", |logits: &Tensor, _labels: &Tensor| {
///     logits.softmax(-1, Kind::Float).amax(-1, false).sum(Kind::Float)
/// });
/// let logits = Tensor::from_slice2(&[[0.0f32, 0.0], [10.0, -10.0]]);
/// let sum = confidence.batch_sum(&logits, &Tensor::from_slice(&[0i64, 0]));
/// assert!((sum.double_value(&[]) - 1.5).abs() < 1e-6);
/// assert_eq!(confidence.name(), "val_confidence");
/// ```
pub fn metric_fn<F>(name: &str, f: F) -> MetricFn<F>
where
    F: Fn(&Tensor, &Tensor) -> Tensor,
{
    MetricFn {
        name: name.to_string(),
        f,
    }
}

/// See [`metric_fn`].
pub struct MetricFn<F> {
    name: String,
    f: F,
}

impl<F> std::fmt::Debug for MetricFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricFn")
            .field("name", &self.name)
            .finish()
    }
}

impl<F: Fn(&Tensor, &Tensor) -> Tensor> Metric for MetricFn<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_sum(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        (self.f)(logits, labels)
    }
}

/// Top-k accuracy, recorded as `val_top{k}_accuracy`: the fraction of labelled images whose
/// label is among the `k` largest logits.
///
/// ```
/// use kd_train::metric::{Metric, TopK};
/// use tch::Tensor;
///
/// let top2 = TopK::new(2);
/// let logits = Tensor::from_slice2(&[[3.0f32, 2.0, 1.0], [3.0, 2.0, 1.0]]);
/// let hits = top2.batch_sum(&logits, &Tensor::from_slice(&[1i64, 2]));
/// assert_eq!(hits.double_value(&[]), 1.0);
/// assert_eq!(top2.name(), "val_top2_accuracy");
/// ```
#[derive(Debug, Clone)]
pub struct TopK {
    k: i64,
    name: String,
}

impl TopK {
    /// Top-`k` accuracy.
    pub fn new(k: usize) -> Self {
        Self {
            k: k as i64,
            name: format!("val_top{k}_accuracy"),
        }
    }
}

impl Metric for TopK {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_sum(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        let k = self.k.min(logits.size()[1]);
        let (_, top) = logits.topk(k, -1, true, false);
        top.eq_tensor(&labels.unsqueeze(1))
            .any_dim(1, false)
            .sum(Kind::Float)
    }
}

/// Refuses metric names that are empty, repeated, or taken by a built-in metric (the error
/// names the metric and what is taken).
pub(crate) fn check_names(metrics: &[Box<dyn Metric + '_>], phase: &str) -> Result<()> {
    let built_in = EpochMetrics::built_in_names();
    for (i, m) in metrics.iter().enumerate() {
        let name = m.name();
        let taken = name.is_empty()
            || built_in.contains(&name)
            || metrics[..i].iter().any(|other| other.name() == name);
        if taken {
            return Err(TrainError::InvalidConfig {
                key: format!("{phase}: metric {name:?}"),
                expected: format!(
                    "a name of its own, not empty and not one of {built_in:?} or another metric's"
                ),
                got: name.into(),
            });
        }
    }
    Ok(())
}

/// Each of `metrics` over the batches of `val` (inference mode, no gradients): its mean
/// over the images, by name.
pub(crate) fn evaluate_metrics(
    model: &dyn Network,
    val: &dyn BatchSource,
    metrics: &[Box<dyn Metric + '_>],
) -> Result<Vec<(String, f64)>> {
    if metrics.is_empty() {
        return Ok(Vec::new());
    }
    let _no_grad = tch::no_grad_guard();
    let mut sums: Vec<Option<Tensor>> = metrics.iter().map(|_| None).collect();
    let mut images = 0usize;
    val.for_each_batch(0, &mut |batch| {
        let logits = model.forward_t(&batch.images, false);
        for (sum, m) in sums.iter_mut().zip(metrics) {
            accumulate(
                sum,
                m.batch_sum(&logits, &batch.labels).to_kind(Kind::Double),
            );
        }
        images += batch.len();
        Ok(())
    })?;
    Ok(metrics
        .iter()
        .zip(sums)
        .map(|(m, sum)| {
            let total = sum.map_or(0.0, |t| t.double_value(&[]));
            (m.name().to_string(), total / images.max(1) as f64)
        })
        .collect())
}

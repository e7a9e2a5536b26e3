//! [`BatchSource`]: what the fit, evaluation and the teacher-logit cache need of their data —
//! an epoch's batches in order, their count, and how many images lack a label. kd-data's
//! [`BatchLoader`] (seeded shuffling, augmentation, prefetching) is one source; batches a
//! program already holds (`Vec<Batch>`) are another; a user's own pipeline is a third, by
//! implementing the trait — as burn's learner takes any `DataLoader` and Keras' `fit` any
//! `tf.data` or generator.

use kd_data::{Batch, BatchLoader};
use tch::Kind;

use crate::error::Result;

/// A source of mini-batches: images `[b, c, h, w]` (float), labels `[b]` (i64, -1 for an
/// unlabeled image) and each image's index in its dataset `[b]` (which cached teacher logits
/// are gathered by).
///
/// ```
/// use kd_data::Batch;
/// use kd_train::BatchSource;
/// use tch::{Device, Kind, Tensor};
///
/// let batch = |first: i64| Batch {
///     images: Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu)),
///     labels: Tensor::from_slice(&[0i64, -1]),
///     indices: Tensor::arange_start(first, first + 2, (Kind::Int64, Device::Cpu)),
/// };
/// let batches = vec![batch(0), batch(2)];
/// assert_eq!(batches.num_batches(), 2);
/// assert_eq!(batches.images(), (4, 2));
/// let mut seen = 0;
/// batches.for_each_batch(1, &mut |b| {
///     seen += b.len();
///     Ok(())
/// })?;
/// assert_eq!(seen, 4);
/// # Ok::<(), kd_train::TrainError>(())
/// ```
pub trait BatchSource {
    /// Batches in one epoch.
    fn num_batches(&self) -> usize;

    /// Images in one epoch, and how many of them have no label (label -1): cross-entropy
    /// refuses to train on those.
    fn images(&self) -> (usize, usize);

    /// Gives every batch of epoch `epoch` to `each`, in order, and stops at its first error.
    /// Training epochs count from 1 (a source may shuffle by it); epoch 0 is an evaluation
    /// pass.
    fn for_each_batch(&self, epoch: usize, each: &mut dyn FnMut(Batch) -> Result<()>)
        -> Result<()>;
}

impl BatchSource for BatchLoader<'_> {
    fn num_batches(&self) -> usize {
        BatchLoader::num_batches(self)
    }

    fn images(&self) -> (usize, usize) {
        let data = self.dataset();
        (data.len(), data.len() - data.labelled_len())
    }

    /// The loader's epoch, shuffled and augmented as it is configured, prefetched.
    fn for_each_batch(
        &self,
        epoch: usize,
        each: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        self.with_epoch(epoch, |batches| batches.into_iter().try_for_each(each))
    }
}

/// Batches held in memory: the same batches, in the same order, every epoch.
impl BatchSource for Vec<Batch> {
    fn num_batches(&self) -> usize {
        self.len()
    }

    fn images(&self) -> (usize, usize) {
        self.iter().fold((0, 0), |(n, unlabeled), b| {
            let missing = b.labels.lt(0).sum(Kind::Int64).int64_value(&[]) as usize;
            (n + b.len(), unlabeled + missing)
        })
    }

    fn for_each_batch(
        &self,
        _epoch: usize,
        each: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        self.iter().try_for_each(|b| each(b.slice(0..b.len())))
    }
}

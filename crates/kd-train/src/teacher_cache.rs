//! Filling kd-core's [`LogitCache`] from a data loader: one inference pass of the frozen
//! teacher over every image, the logits stored in dataset order whatever order the loader
//! visits the images in. It lives here, beside the loop that uses it, so that kd-core (the
//! losses, the Distiller and the cache itself) depends on no data crate.

use kd_core::{CacheDtype, LogitCache};
use kd_data::BatchLoader;
use kd_models::Model;
use tch::Tensor;

/// Runs `teacher` (inference mode, no gradients) over every image of `loader` and keeps the
/// logits as `dtype`, on `loader`'s device when they fit in
/// [`kd_core::cache::DEVICE_CACHE_LIMIT_BYTES`] (see [`LogitCache::placed`]).
pub fn cache_teacher_logits(
    teacher: &Model,
    loader: &BatchLoader,
    dtype: CacheDtype,
) -> LogitCache {
    let logits = tch::no_grad(|| {
        let (mut rows, mut order) = (Vec::new(), Vec::new());
        loader.with_epoch(0, |batches| {
            for batch in batches {
                rows.push(
                    teacher
                        .forward_t(&batch.images, false)
                        .to_kind(dtype.kind()),
                );
                order.push(batch.indices);
            }
        });
        let logits = Tensor::cat(&rows, 0);
        let order = Tensor::cat(&order, 0).to_device(logits.device());
        logits.zeros_like().index_copy(0, &order, &logits)
    });
    let device = logits.device();
    LogitCache::placed(logits, dtype, device)
}

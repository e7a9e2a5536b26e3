//! Filling kd-core's [`LogitCache`]: one inference pass of the frozen teacher over every
//! image, the logits stored in dataset order whatever order the loader visits the images in
//! — in one process, or each rank of a data-parallel run computing its share
//! ([`teacher_logit_cache`], the one way a run fills its cache). It lives here, beside the
//! loop that uses it, so that kd-core (the losses, the Distiller and the cache itself)
//! depends on no data crate.

use kd_core::{CacheDtype, LogitCache};
use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::Network;
use tch::{Device, Tensor};

use crate::batches::BatchSource;
use crate::distributed::DataParallel;

/// Runs `teacher` (inference mode, no gradients) over every image of `loader` and keeps the
/// logits as `dtype`, on `loader`'s device when they fit in
/// [`kd_core::cache::DEVICE_CACHE_LIMIT_BYTES`] (see [`LogitCache::placed`]).
pub fn cache_teacher_logits(
    teacher: &dyn Network,
    loader: &dyn BatchSource,
    dtype: CacheDtype,
) -> crate::Result<LogitCache> {
    let logits = tch::no_grad(|| -> crate::Result<Tensor> {
        let (mut rows, mut order) = (Vec::new(), Vec::new());
        loader.for_each_batch(0, &mut |batch| {
            rows.push(
                teacher
                    .forward_t(&batch.images, false)
                    .to_kind(dtype.kind()),
            );
            order.push(batch.indices);
            Ok(())
        })?;
        let logits = Tensor::cat(&rows, 0);
        let order = Tensor::cat(&order, 0).to_device(logits.device());
        Ok(logits.zeros_like().index_copy(0, &order, &logits))
    })?;
    let device = logits.device();
    Ok(LogitCache::placed(logits, dtype, device))
}

/// The teacher's logits for every image of `data` (`transform`ed, in batches of `batch` on
/// `device`), kept as `dtype` and placed as [`LogitCache::placed`] places them. Under data
/// parallelism (`parallel`) each rank runs the teacher on its contiguous share and every
/// rank receives the whole cache; a set with fewer images than ranks is an error.
pub fn teacher_logit_cache(
    teacher: &dyn Network,
    data: &ImageDataset,
    (transform, batch, device): (&TransformConfig, usize, Device),
    dtype: CacheDtype,
    parallel: Option<DataParallel>,
) -> crate::Result<LogitCache> {
    let loader = |d| BatchLoader::new(d, batch, transform.clone(), device);
    let Some(dp) = parallel else {
        return cache_teacher_logits(teacher, &loader(data), dtype);
    };
    if data.len() < dp.world_size() {
        return Err(crate::TrainError::TooFewImages {
            images: data.len(),
            ranks: dp.world_size(),
        });
    }
    let mine = dp.shard(data.len());
    let part = data.select(&mine.clone().collect::<Vec<_>>());
    let share = cache_teacher_logits(teacher, &loader(&part), CacheDtype::F32)?;
    let all = dp.assemble_rows(share.logits(), mine, data.len())?;
    Ok(LogitCache::placed(all, dtype, device))
}

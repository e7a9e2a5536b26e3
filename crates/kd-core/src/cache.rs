//! The teacher-logit cache. A frozen teacher in inference mode maps an image to the same
//! logits every epoch, so when the students' inputs are not randomly augmented the
//! teacher's work for a whole training run is one pass over the data: the logits of every
//! image are computed once, stored in dataset order, and gathered by image index for each
//! batch. The loss values are those of recomputing the teacher (up to the last bits that
//! libtorch's batch-size-dependent kernels may change, and f16 rounding if chosen).
//!
//! With random augmentation the teacher sees a different image every epoch; caching its
//! logits of the un-augmented images then teaches the student on inputs the teacher never
//! judged. Beyer et al. (2022, "Knowledge distillation: A good teacher is patient and
//! consistent", CVPR) show that "consistent teaching" (teacher and student on the same
//! augmented view) matters, so the cache is off by default when augmenting.
//!
//! kd-train's `cache_teacher_logits` fills a cache from a data loader; [`LogitCache::placed`]
//! and [`LogitCache::from_logits`] take logits computed any other way.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// When to cache the teacher's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Cache when the students' inputs are not augmented (exact), run the teacher live
    /// on each augmented batch otherwise (consistent teaching).
    #[default]
    Auto,
    /// Always cache, even with augmentation (the logits of un-augmented images).
    Always,
    /// Never cache: the teacher runs on every batch.
    Never,
}

impl CacheMode {
    /// Whether to cache when the students' inputs are (`augmented`) or are not augmented.
    pub fn caches(self, augmented: bool) -> bool {
        match self {
            Self::Auto => !augmented,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// Storage precision of cached logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDtype {
    /// 4 bytes per logit, exact.
    #[default]
    F32,
    /// 2 bytes per logit; about 3 significant digits (logits within +-65504).
    F16,
}

impl CacheDtype {
    /// The tensor kind the logits are stored as.
    pub fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::F16 => Kind::Half,
        }
    }
}

/// Cache settings (`[teacher.cache]` in a run config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// When to cache.
    pub mode: CacheMode,
    /// How to store the logits.
    pub dtype: CacheDtype,
}

/// Cached logits kept on the training device up to this size, on the CPU beyond it.
pub const DEVICE_CACHE_LIMIT_BYTES: i64 = 1 << 30;

/// The teacher's logits for every image of a dataset, in dataset order.
#[derive(Debug)]
pub struct LogitCache {
    logits: Tensor,
}

impl LogitCache {
    /// Logits `[n, k]` already in dataset order, kept as `dtype` where [`Self::placement`]
    /// puts them.
    pub fn placed(logits: Tensor, dtype: CacheDtype, device: Device) -> Self {
        let logits = logits.to_kind(dtype.kind());
        let place = Self::placement(logits.numel(), dtype, device);
        Self {
            logits: logits.to_device(place),
        }
    }

    /// Where [`Self::placed`] keeps `elements` logits stored as `dtype` for training on
    /// `device`: there when they fit in [`DEVICE_CACHE_LIMIT_BYTES`], in host memory
    /// otherwise. A run can tell before computing them.
    pub fn placement(elements: usize, dtype: CacheDtype, device: Device) -> Device {
        let bytes = elements as i64 * dtype.kind().elt_size_in_bytes() as i64;
        if bytes > DEVICE_CACHE_LIMIT_BYTES {
            Device::Cpu
        } else {
            device
        }
    }

    /// Wraps logits `[n, k]` already in dataset order.
    pub fn from_logits(logits: Tensor) -> Self {
        Self { logits }
    }

    /// The logits of images `indices` (`[b]`, i64) as f32 on `device`.
    pub fn gather(&self, indices: &Tensor, device: Device) -> Tensor {
        self.logits
            .index_select(0, &indices.to_device(self.logits.device()))
            .to_device(device)
            .to_kind(Kind::Float)
    }

    /// All cached logits `[n, k]`, in their stored precision.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }
}

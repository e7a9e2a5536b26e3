//! Seeded mini-batch loading: a permutation per epoch drawn from ChaCha8 seeded with
//! `(seed, epoch)` (so a run is reproducible and independent of libtorch's global RNG),
//! batches gathered from the `u8` store and transformed to float on the fly, on a background
//! thread when taken through [`BatchLoader::with_epoch`].

use std::sync::{Arc, Mutex, OnceLock};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::augment::AugmentConfig;
use crate::dataset::{batch_label, ImageDataset};
use crate::prefetch::{prefetch, Prefetched};
use crate::transform::TransformConfig;

/// Finished batches a loader keeps ready ahead of the one being trained on.
pub const PREFETCH_DEPTH: usize = 2;

/// One mini-batch: float images `[b, c, h, w]`, labels `[b]` (i64) and the dataset indices
/// of its images `[b]` (i64), which let a trainer look up per-example targets such as cached
/// teacher logits.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub indices: Tensor,
}

impl Batch {
    /// Images `range` of the batch (views, no copy).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Batch {
        let (start, len) = (range.start as i64, range.len() as i64);
        Batch {
            images: self.images.narrow(0, start, len),
            labels: self.labels.narrow(0, start, len),
            indices: self.indices.narrow(0, start, len),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Datasets up to this size are copied once to a CUDA device and batched there
/// ([`BatchLoader::resident`]): 50,000 CIFAR images take 150 MiB.
pub const RESIDENT_LIMIT_BYTES: usize = 2 << 30;

/// A dataset's images (`u8`) and labels (i64) on the loader's device, locked together.
#[derive(Debug)]
struct Resident(Mutex<(Tensor, Tensor)>);

/// Iterates a dataset in mini-batches.
#[derive(Debug, Clone)]
pub struct BatchLoader<'a> {
    data: &'a ImageDataset,
    /// Set when batches are gathered on the device; filled on first use.
    resident: Option<Arc<OnceLock<Resident>>>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    transform: TransformConfig,
    augment: AugmentConfig,
    device: Device,
}

impl<'a> BatchLoader<'a> {
    /// A loader over `data`; `batch_size` must be at least 1 (configs check it first).
    pub fn new(
        data: &'a ImageDataset,
        batch_size: usize,
        transform: TransformConfig,
        device: Device,
    ) -> Self {
        assert!(batch_size > 0, "batch size must be at least 1");
        let on_gpu = matches!(device, Device::Cuda(_));
        let loader = Self {
            data,
            resident: None,
            batch_size,
            shuffle: false,
            seed: 0,
            transform,
            augment: AugmentConfig::default(),
            device,
        };
        loader.resident(on_gpu && data.images().len() <= RESIDENT_LIMIT_BYTES)
    }

    /// With `on`, copies the dataset to the loader's device once and assembles batches there
    /// (an index gather, then the transform): no host-to-device copy of images per step.
    /// On by default for CUDA devices when the dataset fits in [`RESIDENT_LIMIT_BYTES`].
    /// Augmented batches are still assembled on the host, and the copy is made only when a
    /// batch is first gathered on the device.
    pub fn resident(mut self, on: bool) -> Self {
        self.resident = on.then(|| Arc::new(OnceLock::new()));
        self
    }

    /// The dataset on the loader's device, copied there on first use (so a loader whose
    /// batches are augmented on the host never copies it).
    fn upload(&self) -> Resident {
        let [c, h, w] = self.data.image_shape();
        let n = self.data.len() as i64;
        let pixels = self
            .data
            .images()
            .as_slice()
            .expect("dataset images are stored contiguously");
        let k = self.data.classes();
        let labels: Vec<i64> = self
            .data
            .labels()
            .iter()
            .map(|&l| batch_label(l, k))
            .collect();
        let images = Tensor::from_slice(pixels)
            .view([n, c as i64, h as i64, w as i64])
            .to_device(self.device);
        let labels = Tensor::from_slice(&labels).to_device(self.device);
        Resident(Mutex::new((images, labels)))
    }

    /// Augments every training image as it is gathered (see [`AugmentConfig`]).
    pub fn augmented(mut self, augment: AugmentConfig) -> Self {
        self.augment = augment;
        self
    }

    /// Shuffles each epoch with a permutation derived from `seed` and the epoch number.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// The dataset behind this loader.
    pub fn dataset(&self) -> &ImageDataset {
        self.data
    }

    /// Number of batches per epoch (the last one may be smaller).
    pub fn num_batches(&self) -> usize {
        self.data.len().div_ceil(self.batch_size)
    }

    /// The order in which `epoch` visits the dataset.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            order.shuffle(&mut self.epoch_rng(epoch, 0));
        }
        order
    }

    /// The random stream of `epoch` for `purpose` (0: order, 1: augmentation).
    fn epoch_rng(&self, epoch: usize, purpose: u64) -> ChaCha8Rng {
        let stream = self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        rng.set_stream(purpose);
        rng
    }

    /// The batches of one epoch.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Batch> + '_ {
        let order = self.order(epoch);
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch_size).map(|c| c.to_vec()).collect();
        let mut rng = self.epoch_rng(epoch, 1);
        chunks
            .into_iter()
            .map(move |idx| self.gather_with(&idx, &mut rng))
    }

    /// Runs `consume` on the batches of `epoch`, assembled on a background thread up to
    /// [`PREFETCH_DEPTH`] batches ahead ([`crate::prefetch`]).
    pub fn with_epoch<R>(&self, epoch: usize, consume: impl FnOnce(Prefetched<Batch>) -> R) -> R {
        prefetch(self.epoch(epoch), PREFETCH_DEPTH, consume)
    }

    /// Assembles the batch made of the images at `indices` (augmented if the loader is).
    pub fn gather(&self, indices: &[usize]) -> Batch {
        self.gather_with(indices, &mut self.epoch_rng(0, 1))
    }

    fn gather_with(&self, indices: &[usize], rng: &mut ChaCha8Rng) -> Batch {
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        if let (Some(cell), false) = (&self.resident, self.augment.is_enabled()) {
            let resident = cell.get_or_init(|| self.upload());
            let idx = self.to_device_async(&Tensor::from_slice(&idx));
            let (images, labels) = {
                let store = resident
                    .0
                    .lock()
                    .expect("a resident dataset is never left mid-update");
                (store.0.index_select(0, &idx), store.1.index_select(0, &idx))
            };
            return Batch {
                images: self.transform.apply(&images),
                labels,
                indices: idx,
            };
        }
        let [c, h, w] = self.data.image_shape();
        let per_image = c * h * w;
        let pixels = self
            .data
            .images()
            .as_slice()
            .expect("dataset images are stored contiguously");
        let mut buf = Vec::with_capacity(indices.len() * per_image);
        for &i in indices {
            let image = &pixels[i * per_image..(i + 1) * per_image];
            if self.augment.is_enabled() {
                self.augment.push_image(image, [c, h, w], rng, &mut buf);
            } else {
                buf.extend_from_slice(image);
            }
        }
        let b = indices.len() as i64;
        let raw = Tensor::from_slice(&buf).view([b, c as i64, h as i64, w as i64]);
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| batch_label(self.data.labels()[i], self.data.classes()))
            .collect();
        Batch {
            images: self.transform.apply(&self.to_device_async(&raw)),
            labels: self.to_device_async(&Tensor::from_slice(&labels)),
            indices: self.to_device_async(&Tensor::from_slice(&idx).to_kind(Kind::Int64)),
        }
    }

    /// `host`, a CPU tensor made for one batch, on the loader's device. To a GPU it goes
    /// through page-locked memory and is copied without blocking this thread: the copy is
    /// queued on this thread's current stream, the default stream the training thread also
    /// launches on, so what uses the batch runs after it, and this thread goes on assembling
    /// the next batch instead of waiting for the GPU to reach the copy. (The copy still runs
    /// in turn with the training kernels on that stream.) The page-locked block comes from
    /// libtorch's caching host allocator, which records the copy's stream and reuses the
    /// block only once the copy is done, so the pinned tensor may be dropped at once.
    fn to_device_async(&self, host: &Tensor) -> Tensor {
        match self.device {
            // `_pin_memory`: `pin_memory` with a device argument warns on every call.
            Device::Cuda(_) => host.internal_pin_memory(self.device).to_device_(
                self.device,
                host.kind(),
                true,
                false,
            ),
            _ => host.to_device(self.device),
        }
    }
}

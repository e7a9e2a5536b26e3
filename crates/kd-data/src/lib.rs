//! Data layer of kd: real dataset formats read into `u8` storage, and seeded batch loading.
//!
//! - [`idx`]: the IDX format of MNIST / Fashion-MNIST (gzipped or not);
//! - [`cifar`]: the binary format of CIFAR-10 and CIFAR-100;
//! - [`image_folder`]: PNG/JPEG files in one folder per class, decoded once into
//!   [`folder_cache`];
//! - [`catalog`]: [`DatasetKind`], the datasets known by name;
//! - [`dataset`]: [`ImageDataset`], images `[n, c, h, w]` as `u8` with labels;
//! - [`split`]: a seeded hold-out validation split;
//! - [`transform`]: scaling, padding, normalization of a batch;
//! - [`augment`]: random flips and crops of training images;
//! - [`loader`]: shuffled, seeded mini-batches as tch tensors;
//! - [`prefetch`]: batches assembled on a background thread with a bounded queue.

pub mod augment;
pub mod catalog;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod folder_cache;
pub mod idx;
pub mod image_folder;
pub mod loader;
pub mod prefetch;
pub mod split;
pub mod transform;

pub use augment::AugmentConfig;
pub use catalog::DatasetKind;
pub use cifar::{load_cifar10, load_cifar100, CifarLabel};
pub use dataset::{
    batch_label, load_mnist_family, ImageDataset, Splits, UNLABELED, UNLABELED_TARGET,
};
pub use error::{DataError, Result};
pub use image_folder::{
    load_image_folder, load_unlabeled_folder, FolderSplits, ImageFolderConfig, OnBadImage,
    ResizeMode,
};
pub use loader::{Batch, BatchLoader};
pub use prefetch::{prefetch, Prefetched};
pub use split::{holdout_split, random_subset, random_subset_and_rest};
pub use transform::TransformConfig;

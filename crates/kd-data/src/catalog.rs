//! The datasets kd knows by name, with their image shape, class count, default directory
//! and reader — what a config's `[data] dataset = "..."` selects.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cifar::{load_cifar10, load_cifar100, CifarLabel};
use crate::dataset::{load_mnist_family, Splits};
use crate::error::{DataError, Result};
use crate::image_folder::{load_image_folder, ImageFolderConfig};

/// A supported dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST: 28x28 grayscale, 10 classes, IDX files.
    FashionMnist,
    /// MNIST: 28x28 grayscale, 10 classes, IDX files.
    Mnist,
    /// CIFAR-10: 32x32 RGB, 10 classes, binary batches.
    Cifar10,
    /// CIFAR-100 with its 100 fine labels.
    Cifar100,
    /// CIFAR-100 with its 20 coarse (superclass) labels.
    Cifar100Coarse,
    /// A folder of PNG/JPEG files, one subfolder per class ([`crate::image_folder`]): its
    /// shape, classes and names come from its settings and its folders.
    ImageFolder,
}

impl DatasetKind {
    /// Every built-in dataset (what `cargo xtask fetch-data` can download).
    pub const ALL: [Self; 5] = [
        Self::FashionMnist,
        Self::Mnist,
        Self::Cifar10,
        Self::Cifar100,
        Self::Cifar100Coarse,
    ];

    /// The config name, e.g. `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::Cifar100Coarse => "cifar100-coarse",
            Self::ImageFolder => "image-folder",
        }
    }

    /// `[channels, height, width]` of one image as stored (`None` for an image folder,
    /// whose settings say).
    pub fn image_shape(self) -> Option<[usize; 3]> {
        match self {
            Self::FashionMnist | Self::Mnist => Some([1, 28, 28]),
            Self::Cifar10 | Self::Cifar100 | Self::Cifar100Coarse => Some([3, 32, 32]),
            Self::ImageFolder => None,
        }
    }

    /// Number of classes (`None` for an image folder, whose folders say).
    pub fn classes(self) -> Option<usize> {
        match self {
            Self::FashionMnist | Self::Mnist | Self::Cifar10 => Some(10),
            Self::Cifar100 => Some(100),
            Self::Cifar100Coarse => Some(20),
            Self::ImageFolder => None,
        }
    }

    /// The class names in label order, where the dataset publishes them briefly (the
    /// CIFAR-100 lists are left to the dataset's `meta` files: `None`, use the indices).
    pub fn class_names(self) -> Option<&'static [&'static str]> {
        match self {
            Self::FashionMnist => Some(&[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]),
            Self::Mnist => Some(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
            Self::Cifar10 => Some(&[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ]),
            Self::Cifar100 | Self::Cifar100Coarse | Self::ImageFolder => None,
        }
    }

    /// Where `cargo xtask fetch-data` puts the dataset, relative to the workspace root.
    pub fn default_dir(self) -> PathBuf {
        PathBuf::from(match self {
            Self::FashionMnist => "data/fashion-mnist",
            Self::Mnist => "data/mnist",
            Self::Cifar10 => "data/cifar-10-batches-bin",
            Self::Cifar100 | Self::Cifar100Coarse => "data/cifar-100-binary",
            Self::ImageFolder => "data/images",
        })
    }

    /// Reads the training and test splits from `dir`; an image folder is read with its
    /// settings (`folder`) and must have a `test/` folder.
    pub fn load(self, dir: &Path, folder: &ImageFolderConfig) -> Result<Splits> {
        match self {
            Self::FashionMnist | Self::Mnist => load_mnist_family(dir),
            Self::Cifar10 => load_cifar10(dir),
            Self::Cifar100 => load_cifar100(dir, CifarLabel::Cifar100Fine),
            Self::Cifar100Coarse => load_cifar100(dir, CifarLabel::Cifar100Coarse),
            Self::ImageFolder => {
                let splits = load_image_folder(dir, folder)?;
                let test = splits.test.ok_or_else(|| DataError::Folder {
                    dir: dir.to_path_buf(),
                    detail: "expected a test/ folder (one subfolder per class) to evaluate on"
                        .into(),
                })?;
                Ok(Splits {
                    train: splits.train,
                    val: splits.val,
                    test,
                    class_names: Some(splits.classes),
                })
            }
        }
    }
}

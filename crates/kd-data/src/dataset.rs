//! In-memory image classification datasets that keep pixels as `u8` (4x smaller than f32;
//! conversion to float happens per batch in [`crate::loader`]).

use std::path::Path;

use ndarray::{Array4, Axis};

use crate::error::{DataError, Result};
use crate::idx::read_idx;

/// The stored label of an image that has none (a transfer-set image, Hinton et al. 2015,
/// section 2): loaders hand it out as [`UNLABELED_TARGET`].
pub const UNLABELED: u8 = u8::MAX;

/// The label an unlabeled image has in a batch: `-1`, which no class index equals, so a
/// label-only loss given one fails instead of learning from it (kd-core's losses leave such
/// rows out of their label term).
pub const UNLABELED_TARGET: i64 = -1;

/// The batch label of a stored label in a dataset of `classes` classes: [`UNLABELED`] marks
/// an image without a label only where it cannot be a class (fewer than 256 classes).
pub fn batch_label(stored: u8, classes: usize) -> i64 {
    if stored == UNLABELED && classes <= usize::from(UNLABELED) {
        UNLABELED_TARGET
    } else {
        i64::from(stored)
    }
}

/// Images `[n, channels, height, width]` as `u8` and one label per image.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    images: Array4<u8>,
    labels: Vec<u8>,
    classes: usize,
}

impl ImageDataset {
    /// Builds a dataset, checking that there is one label per image and that every label is
    /// below `classes`; `source` names the origin of the labels in error messages.
    pub fn new(images: Array4<u8>, labels: Vec<u8>, classes: usize, source: &Path) -> Result<Self> {
        if images.len_of(Axis(0)) != labels.len() {
            return Err(DataError::Shape {
                path: source.to_path_buf(),
                expected: format!("{} labels (one per image)", images.len_of(Axis(0))),
                found: format!("{} labels", labels.len()),
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(DataError::LabelOutOfRange {
                path: source.to_path_buf(),
                index,
                label,
                classes,
            });
        }
        Ok(Self {
            images,
            labels,
            classes,
        })
    }

    /// Reads an IDX image file (`[n, h, w]`, one channel) and its IDX label file (`[n]`).
    pub fn from_idx(images_path: &Path, labels_path: &Path, classes: usize) -> Result<Self> {
        let images = read_idx(images_path)?;
        if images.dims.len() != 3 {
            return Err(DataError::Shape {
                path: images_path.to_path_buf(),
                expected: "3 dimensions [n, height, width]".into(),
                found: format!("{} dimensions {:?}", images.dims.len(), images.dims),
            });
        }
        let labels = read_idx(labels_path)?;
        if labels.dims.len() != 1 {
            return Err(DataError::Shape {
                path: labels_path.to_path_buf(),
                expected: "1 dimension [n]".into(),
                found: format!("{} dimensions {:?}", labels.dims.len(), labels.dims),
            });
        }
        let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        let images = Array4::from_shape_vec((n, 1, h, w), images.data)
            .expect("IDX reader checked the element count");
        Self::new(images, labels.data, classes, labels_path)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (labels lie in `0..classes`).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `[channels, height, width]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        let (_, c, h, w) = self.images.dim();
        [c, h, w]
    }

    /// The pixels, `[n, c, h, w]`.
    pub fn images(&self) -> &Array4<u8> {
        &self.images
    }

    /// The labels, one per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The datasets one after another; `None` when `parts` is empty or their image shapes or
    /// class counts differ.
    pub fn concat(parts: &[Self]) -> Option<Self> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.image_shape() != first.image_shape() || p.classes != first.classes)
        {
            return None;
        }
        let views: Vec<_> = parts.iter().map(|p| p.images.view()).collect();
        Some(Self {
            images: ndarray::concatenate(Axis(0), &views).ok()?,
            labels: parts
                .iter()
                .flat_map(|p| p.labels.iter().copied())
                .collect(),
            classes: first.classes,
        })
    }

    /// The same images with their labels taken away (each becomes [`UNLABELED`]): what a
    /// distilled student learns from through the teacher alone. `None` when the dataset has
    /// 256 classes, whose last label is the marker's value.
    pub fn without_labels(&self) -> Option<Self> {
        Self::unlabeled(self.images.clone(), self.classes)
    }

    /// `images` without labels (each [`UNLABELED`]) in a dataset of `classes` classes;
    /// `None` for 256 classes or more, whose labels include the marker's value.
    pub fn unlabeled(images: Array4<u8>, classes: usize) -> Option<Self> {
        (classes <= usize::from(UNLABELED)).then(|| Self {
            labels: vec![UNLABELED; images.len_of(Axis(0))],
            images,
            classes,
        })
    }

    /// The images, without their labels.
    pub fn into_images(self) -> Array4<u8> {
        self.images
    }

    /// How many images have a label.
    pub fn labelled_len(&self) -> usize {
        let classes = self.classes;
        self.labels
            .iter()
            .filter(|&&l| batch_label(l, classes) >= 0)
            .count()
    }

    /// A new dataset holding the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }
}

/// A dataset's training and test splits (and validation split, where it has one).
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: ImageDataset,
    /// A validation split the dataset brings (an image folder's `val/`).
    pub val: Option<ImageDataset>,
    pub test: ImageDataset,
    /// Class names read from the data (an image folder's folders).
    pub class_names: Option<Vec<String>>,
}

/// File names of the MNIST-family datasets (MNIST and Fashion-MNIST use the same ones).
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Loads an MNIST-family dataset (10 classes) from `dir`, taking each file gzipped
/// (`name.gz`) or not (`name`).
pub fn load_mnist_family(dir: &Path) -> Result<Splits> {
    let find = |name: &str| {
        let gz = dir.join(format!("{name}.gz"));
        let plain = dir.join(name);
        if gz.exists() {
            Ok(gz)
        } else if plain.exists() {
            Ok(plain)
        } else {
            Err(DataError::MissingDataset {
                dir: dir.to_path_buf(),
                detail: format!(
                    "neither {name}.gz nor {name} exists (run `cargo xtask fetch-data --dataset fashion-mnist`)"
                ),
            })
        }
    };
    let [tr_x, tr_y, te_x, te_y] = IDX_FILES;
    Ok(Splits {
        train: ImageDataset::from_idx(&find(tr_x)?, &find(tr_y)?, 10)?,
        val: None,
        test: ImageDataset::from_idx(&find(te_x)?, &find(te_y)?, 10)?,
        class_names: None,
    })
}

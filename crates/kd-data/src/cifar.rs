//! CIFAR-10 and CIFAR-100, binary version (Krizhevsky 2009,
//! <https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! Each file is a sequence of fixed-length records with no header. A CIFAR-10 record is
//! 1 label byte followed by 3072 pixel bytes: the 1024 red, then 1024 green, then 1024 blue
//! values of a 32x32 image, row-major — already the `[c, h, w]` layout of [`ImageDataset`].
//! A CIFAR-100 record has 2 label bytes (coarse, then fine) before the same 3072 bytes.
//!
//! Layout after unpacking the published archives:
//! - `cifar-10-batches-bin/`: `data_batch_1.bin` … `data_batch_5.bin` (10,000 records each)
//!   and `test_batch.bin` (10,000);
//! - `cifar-100-binary/`: `train.bin` (50,000 records) and `test.bin` (10,000).

use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::dataset::{ImageDataset, Splits};
use crate::error::{DataError, Result};

/// Bytes of one 32x32x3 image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// CIFAR-10's training batch files, in order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// CIFAR-10's test batch file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// CIFAR-100's training file.
pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// CIFAR-100's test file.
pub const CIFAR100_TEST_FILE: &str = "test.bin";

/// Which label of a record to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarLabel {
    /// CIFAR-10's single label (10 classes).
    Cifar10,
    /// CIFAR-100's coarse label (20 superclasses), the first label byte.
    Cifar100Coarse,
    /// CIFAR-100's fine label (100 classes), the second label byte.
    Cifar100Fine,
}

impl CifarLabel {
    /// Label bytes before the pixels of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100Coarse | Self::Cifar100Fine => 2,
        }
    }

    /// Bytes of one record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    /// Number of classes of the kept label.
    pub fn classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100Coarse => 20,
            Self::Cifar100Fine => 100,
        }
    }

    /// Offset of the kept label inside a record.
    fn label_offset(self) -> usize {
        match self {
            Self::Cifar10 | Self::Cifar100Coarse => 0,
            Self::Cifar100Fine => 1,
        }
    }
}

/// Parses the records in `bytes` (the content of `path`, named in errors).
pub fn parse_cifar(bytes: &[u8], label: CifarLabel, path: &Path) -> Result<ImageDataset> {
    let record = label.record_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::Shape {
            path: path.to_path_buf(),
            expected: format!("a non-empty whole number of {record}-byte CIFAR records"),
            found: format!(
                "{} bytes ({} records and {} bytes left over)",
                bytes.len(),
                bytes.len() / record,
                bytes.len() % record
            ),
        });
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for chunk in bytes.chunks_exact(record) {
        labels.push(chunk[label.label_offset()]);
        pixels.extend_from_slice(&chunk[label.label_bytes()..]);
    }
    let images = Array4::from_shape_vec((n, 3, 32, 32), pixels)
        .expect("every record holds exactly 3x32x32 pixels");
    ImageDataset::new(images, labels, label.classes(), path)
}

/// Reads one CIFAR binary file.
pub fn read_cifar(path: &Path, label: CifarLabel) -> Result<ImageDataset> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_cifar(&bytes, label, path)
}

/// Reads several CIFAR binary files into one dataset, in order.
pub fn read_cifar_files(paths: &[PathBuf], label: CifarLabel) -> Result<ImageDataset> {
    let parts = paths
        .iter()
        .map(|p| read_cifar(p, label))
        .collect::<Result<Vec<_>>>()?;
    Ok(ImageDataset::concat(&parts).expect("CIFAR files all hold 3x32x32 images"))
}

/// `dir/name`, or a [`DataError::MissingDataset`] naming the fetch command.
fn existing(dir: &Path, name: &str, dataset: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DataError::MissingDataset {
            dir: dir.to_path_buf(),
            detail: format!(
                "{name} does not exist (run `cargo xtask fetch-data --dataset {dataset}`)"
            ),
        })
    }
}

/// Loads CIFAR-10 from `dir` (the unpacked `cifar-10-batches-bin` directory): 50,000
/// training images from the five batches in order, 10,000 test images.
pub fn load_cifar10(dir: &Path) -> Result<Splits> {
    let train = CIFAR10_TRAIN_FILES
        .iter()
        .map(|f| existing(dir, f, "cifar10"))
        .collect::<Result<Vec<_>>>()?;
    let test = existing(dir, CIFAR10_TEST_FILE, "cifar10")?;
    Ok(Splits {
        train: read_cifar_files(&train, CifarLabel::Cifar10)?,
        val: None,
        test: read_cifar(&test, CifarLabel::Cifar10)?,
        class_names: None,
    })
}

/// Loads CIFAR-100 from `dir` (the unpacked `cifar-100-binary` directory) with its fine
/// (100 classes) or coarse (20 superclasses) labels.
pub fn load_cifar100(dir: &Path, label: CifarLabel) -> Result<Splits> {
    assert!(
        label != CifarLabel::Cifar10,
        "load_cifar100 takes a CIFAR-100 label"
    );
    let train = existing(dir, CIFAR100_TRAIN_FILE, "cifar100")?;
    let test = existing(dir, CIFAR100_TEST_FILE, "cifar100")?;
    Ok(Splits {
        train: read_cifar(&train, label)?,
        val: None,
        test: read_cifar(&test, label)?,
        class_names: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One CIFAR-100 record: coarse label, fine label, then pixels equal to `fill`.
    fn record100(coarse: u8, fine: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![coarse, fine];
        r.extend(std::iter::repeat_n(fill, IMAGE_BYTES));
        r
    }

    #[test]
    fn cifar100_keeps_the_requested_label() {
        let bytes = [record100(3, 77, 1), record100(19, 99, 2)].concat();
        let p = Path::new("train.bin");
        let fine = parse_cifar(&bytes, CifarLabel::Cifar100Fine, p).unwrap();
        assert_eq!(fine.labels(), &[77, 99]);
        assert_eq!(fine.classes(), 100);
        let coarse = parse_cifar(&bytes, CifarLabel::Cifar100Coarse, p).unwrap();
        assert_eq!(coarse.labels(), &[3, 19]);
        assert_eq!(coarse.images()[[1, 2, 31, 31]], 2);
    }

    #[test]
    fn cifar100_file_read_as_cifar10_is_refused() {
        // 2 records of 3074 bytes are not a whole number of 3073-byte records.
        let bytes = [record100(1, 1, 0), record100(1, 1, 0)].concat();
        let err = parse_cifar(&bytes, CifarLabel::Cifar10, Path::new("x.bin")).unwrap_err();
        assert!(err.to_string().contains("3073-byte"), "{err}");
    }
}

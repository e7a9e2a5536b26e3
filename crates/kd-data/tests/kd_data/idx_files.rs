//! The IDX reader on files written by the test in the real format: plain and gzipped, and
//! broken in each way a download can break them.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use kd_data::idx::{encode_idx, read_idx};
use kd_data::{load_mnist_family, DataError, ImageDataset};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` images of 28x28 whose pixels encode (image, position), and labels `i % 10`.
fn mnist_like(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * 784)
        .map(|i| ((i / 784) * 7 + (i % 784) % 251) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (encode_idx(&[n, 28, 28], &pixels), encode_idx(&[n], &labels))
}

#[test]
fn reads_plain_and_gzipped_files_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mnist_like(5);
    let plain = read_idx(&write(dir.path(), "a-idx3-ubyte", &images)).unwrap();
    let gz = read_idx(&write(dir.path(), "b-idx3-ubyte.gz", &gzip(&images))).unwrap();
    assert_eq!(plain.dims, vec![5, 28, 28]);
    assert_eq!(plain, gz);
    // Header is 16 bytes; pixel (image 2, position 3) is (2 * 7 + 3) % 256.
    assert_eq!(plain.data[2 * 784 + 3], 17);
}

#[test]
fn loads_a_dataset_directory_with_mixed_compression() {
    let dir = tempfile::tempdir().unwrap();
    let (tr_x, tr_y) = mnist_like(20);
    let (te_x, te_y) = mnist_like(10);
    write(dir.path(), "train-images-idx3-ubyte.gz", &gzip(&tr_x));
    write(dir.path(), "train-labels-idx1-ubyte", &tr_y);
    write(dir.path(), "t10k-images-idx3-ubyte", &te_x);
    write(dir.path(), "t10k-labels-idx1-ubyte.gz", &gzip(&te_y));
    let splits = load_mnist_family(dir.path()).unwrap();
    assert_eq!(splits.train.len(), 20);
    assert_eq!(splits.test.len(), 10);
    assert_eq!(splits.train.image_shape(), [1, 28, 28]);
    assert_eq!(splits.train.labels()[13], 3);
    assert_eq!(splits.test.images()[[4, 0, 0, 5]], (4 * 7 + 5) as u8);
}

#[test]
fn missing_file_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_mnist_family(dir.path()).unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    assert!(err.contains("cargo xtask fetch-data"), "{err}");
}

#[test]
fn truncated_file_is_reported_with_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mnist_like(3);
    let path = write(dir.path(), "cut-idx3-ubyte", &images[..images.len() - 100]);
    match read_idx(&path).unwrap_err() {
        DataError::Truncated {
            path: p,
            expected,
            found,
        } => {
            assert_eq!(p, path);
            assert_eq!(expected, 3 * 784);
            assert_eq!(found, 3 * 784 - 100);
        }
        other => panic!("expected Truncated, got {other}"),
    }
}

#[test]
fn truncated_gzip_stream_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mnist_like(3);
    let gz = gzip(&images);
    let path = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
    let err = read_idx(&path).unwrap_err().to_string();
    assert!(err.contains("cut.gz"), "{err}");
}

#[test]
fn wrong_magic_numbers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut images, _) = mnist_like(1);
    images[2] = 0x0D; // float elements
    let err = read_idx(&write(dir.path(), "f.idx", &images)).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("0x0d"), "{err}");
    let err = read_idx(&write(dir.path(), "png", b"\x89PNG\r\n\x1a\n....")).unwrap_err();
    assert!(err.to_string().contains("two zero bytes"), "{err}");
    let err = read_idx(&write(dir.path(), "tiny", b"\0\0")).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
}

#[test]
fn label_out_of_range_is_rejected_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mnist_like(4);
    let labels = encode_idx(&[4], &[0, 9, 10, 1]);
    let x = write(dir.path(), "x", &images);
    let y = write(dir.path(), "y", &labels);
    match ImageDataset::from_idx(&x, &y, 10).unwrap_err() {
        DataError::LabelOutOfRange {
            index, label, path, ..
        } => {
            assert_eq!((index, label), (2, 10));
            assert_eq!(path, y);
        }
        other => panic!("expected LabelOutOfRange, got {other}"),
    }
}

#[test]
fn label_count_must_match_image_count() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mnist_like(4);
    let x = write(dir.path(), "x", &images);
    let y = write(dir.path(), "y", &encode_idx(&[3], &[0, 1, 2]));
    let err = ImageDataset::from_idx(&x, &y, 10).unwrap_err().to_string();
    assert!(err.contains("4 labels"), "{err}");
}

#[test]
fn images_file_must_be_three_dimensional() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x", &encode_idx(&[4], &[0, 1, 2, 3]));
    let y = write(dir.path(), "y", &encode_idx(&[4], &[0, 1, 2, 3]));
    let err = ImageDataset::from_idx(&x, &y, 10).unwrap_err().to_string();
    assert!(err.contains("3 dimensions"), "{err}");
}

//! The CIFAR binary reader on files written by the test in the published record layout
//! (label byte(s), then the red, green and blue 32x32 planes), and broken ones.

use std::path::Path;

use kd_data::cifar::{read_cifar, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, IMAGE_BYTES};
use kd_data::{CifarLabel, DataError, DatasetKind};

/// A CIFAR-10 record whose pixel at `[c, y, x]` is `(seed + 3c + 5y + 7x) mod 256`.
fn record10(label: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3usize {
        for y in 0..32usize {
            for x in 0..32usize {
                r.push((seed as usize + 3 * c + 5 * y + 7 * x) as u8);
            }
        }
    }
    r
}

/// Writes a CIFAR-10 directory: `per_batch` records in each training batch and the test file;
/// record `j` of file `f` has label `(f + j) % 10` and seed `10 f + j`.
fn write_cifar10(dir: &Path, per_batch: usize) {
    let files = CIFAR10_TRAIN_FILES.iter().chain([&CIFAR10_TEST_FILE]);
    for (f, name) in files.enumerate() {
        let bytes: Vec<u8> = (0..per_batch)
            .flat_map(|j| record10(((f + j) % 10) as u8, (10 * f + j) as u8))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar10_planes_and_batch_order() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 3);
    let splits = DatasetKind::Cifar10
        .load(dir.path(), &Default::default())
        .unwrap();
    assert_eq!(splits.train.len(), 15);
    assert_eq!(splits.test.len(), 3);
    assert_eq!(splits.train.image_shape(), [3, 32, 32]);
    assert_eq!(splits.train.classes(), 10);
    // Image 7 is record 1 of data_batch_3 (file index 2): label 3, seed 21.
    assert_eq!(splits.train.labels()[7], 3);
    let img = splits.train.images();
    for (c, y, x) in [(0, 0, 0), (1, 4, 9), (2, 31, 31)] {
        assert_eq!(img[[7, c, y, x]], (21 + 3 * c + 5 * y + 7 * x) as u8);
    }
    // The test file is file index 5.
    assert_eq!(splits.test.labels(), &[5, 6, 7]);
    assert_eq!(splits.test.images()[[2, 2, 1, 1]], (52 + 6 + 5 + 7) as u8);
}

#[test]
fn truncated_batch_names_the_file_and_the_record_size() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 2);
    let p = dir.path().join("data_batch_4.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let err = DatasetKind::Cifar10
        .load(dir.path(), &Default::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Shape { .. }), "{msg}");
    assert!(
        msg.contains("data_batch_4.bin") && msg.contains("3073-byte"),
        "{msg}"
    );
}

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("test.bin");
    std::fs::write(&p, b"").unwrap();
    let err = read_cifar(&p, CifarLabel::Cifar100Fine).unwrap_err();
    assert!(err.to_string().contains("non-empty"), "{err}");
}

#[test]
fn label_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("test_batch.bin");
    std::fs::write(&p, [record10(4, 0), record10(10, 0)].concat()).unwrap();
    let err = read_cifar(&p, CifarLabel::Cifar10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_batch_names_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 1);
    std::fs::remove_file(dir.path().join("data_batch_5.bin")).unwrap();
    let err = DatasetKind::Cifar10
        .load(dir.path(), &Default::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_5.bin") && msg.contains("fetch-data --dataset cifar10"),
        "{msg}"
    );
}

#[test]
fn cifar100_fine_and_coarse() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |coarse: u8, fine: u8| {
        let mut r = vec![coarse, fine];
        r.extend(vec![9u8; IMAGE_BYTES]);
        r
    };
    std::fs::write(
        dir.path().join("train.bin"),
        [rec(0, 4), rec(19, 99), rec(7, 50)].concat(),
    )
    .unwrap();
    std::fs::write(dir.path().join("test.bin"), rec(2, 3)).unwrap();
    let fine = DatasetKind::Cifar100
        .load(dir.path(), &Default::default())
        .unwrap();
    assert_eq!(fine.train.labels(), &[4, 99, 50]);
    assert_eq!(fine.train.classes(), 100);
    let coarse = DatasetKind::Cifar100Coarse
        .load(dir.path(), &Default::default())
        .unwrap();
    assert_eq!(coarse.train.labels(), &[0, 19, 7]);
    assert_eq!(coarse.test.labels(), &[2]);
    assert_eq!(coarse.test.classes(), 20);
}

//! Batching: seeded shuffling, the u8 -> f32 transform, padding and normalization, and the
//! hold-out split.

use std::path::Path;

use kd_data::{holdout_split, BatchLoader, ImageDataset, TransformConfig};
use ndarray::Array4;
use tch::{Device, Kind, Tensor};

/// `n` 2x2 one-channel images; image `i` has every pixel equal to `i`, label `i % 3`.
fn tiny(n: usize) -> ImageDataset {
    let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8; 4]).collect();
    let images = Array4::from_shape_vec((n, 1, 2, 2), pixels).unwrap();
    let labels = (0..n).map(|i| (i % 3) as u8).collect();
    ImageDataset::new(images, labels, 3, Path::new("tiny")).unwrap()
}

/// The original indices of the images of a subset of [`tiny`] (every pixel of image `i`
/// is `i`).
fn ids(d: &ImageDataset) -> Vec<usize> {
    d.images().iter().step_by(4).map(|&p| p as usize).collect()
}

fn to_vec_i64(t: &Tensor) -> Vec<i64> {
    Vec::try_from(t.to_kind(Kind::Int64)).unwrap()
}

#[test]
fn every_image_once_per_epoch_in_a_seeded_order() {
    let data = tiny(10);
    let loader = BatchLoader::new(&data, 4, TransformConfig::default(), Device::Cpu).shuffled(7);
    assert_eq!(loader.num_batches(), 3);
    let seen: Vec<i64> = loader
        .epoch(1)
        .flat_map(|b| to_vec_i64(&b.indices))
        .collect();
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
    assert_ne!(
        seen,
        (0..10).collect::<Vec<i64>>(),
        "epoch 1 should be shuffled"
    );
    // Same seed and epoch: same order; another epoch or seed: another order.
    assert_eq!(loader.order(1), loader.order(1));
    assert_ne!(loader.order(1), loader.order(2));
    let other = BatchLoader::new(&data, 4, TransformConfig::default(), Device::Cpu).shuffled(8);
    assert_ne!(loader.order(1), other.order(1));
}

#[test]
fn batches_carry_matching_pixels_labels_and_indices() {
    let data = tiny(10);
    let loader = BatchLoader::new(&data, 3, TransformConfig::default(), Device::Cpu).shuffled(1);
    for batch in loader.epoch(3) {
        let idx = to_vec_i64(&batch.indices);
        let labels = to_vec_i64(&batch.labels);
        for (row, &i) in idx.iter().enumerate() {
            assert_eq!(labels[row], i % 3);
            let px = batch
                .images
                .get(row as i64)
                .mean(Kind::Float)
                .double_value(&[]);
            assert!((px - i as f64 / 255.0).abs() < 1e-6, "image {i}: {px}");
        }
        assert_eq!(batch.images.kind(), Kind::Float);
    }
}

#[test]
fn padding_centres_the_image_and_normalization_applies_after_it() {
    let data = tiny(2);
    let tf = TransformConfig {
        pad_to: Some(4),
        mean: vec![0.5],
        std: vec![0.25],
    };
    let loader = BatchLoader::new(&data, 2, tf, Device::Cpu);
    let batch = loader.epoch(0).next().unwrap();
    assert_eq!(batch.images.size(), vec![2, 1, 4, 4]);
    // Image 1: pixels 1/255 in the centre 2x2, zero padding around; then (x - 0.5) / 0.25.
    let img = batch.images.get(1).get(0);
    let centre = img.double_value(&[1, 1]);
    let border = img.double_value(&[0, 0]);
    assert!(
        (centre - (1.0 / 255.0 - 0.5) / 0.25).abs() < 1e-6,
        "{centre}"
    );
    assert!((border - (0.0 - 0.5) / 0.25).abs() < 1e-6, "{border}");
}

#[test]
fn transform_config_errors_name_the_key() {
    let tf = TransformConfig {
        pad_to: Some(20),
        ..Default::default()
    };
    let err = tf
        .validate("data.transform", [1, 28, 28])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("data.transform.pad_to"), "{err}");
    let tf = TransformConfig {
        mean: vec![0.5],
        std: vec![0.0],
        ..Default::default()
    };
    let err = tf
        .validate("data.transform", [1, 28, 28])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("data.transform.std"), "{err}");
}

#[test]
fn holdout_split_is_disjoint_complete_and_seeded() {
    let data = tiny(50);
    let (train, val) = holdout_split(&data, 10, 3).unwrap();
    assert_eq!((train.len(), val.len()), (40, 10));
    // Pixel value = original index, so the union must be 0..50 exactly once.
    let mut all = [ids(&train), ids(&val)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    let (_, val_again) = holdout_split(&data, 10, 3).unwrap();
    assert_eq!(ids(&val), ids(&val_again));
    let (_, val_other) = holdout_split(&data, 10, 4).unwrap();
    assert_ne!(ids(&val), ids(&val_other));
    let err = holdout_split(&data, 50, 3).unwrap_err().to_string();
    assert!(err.contains("data.validation_holdout"), "{err}");
}

#[test]
fn random_subset_is_seeded_and_bounded() {
    let data = tiny(50);
    let a = kd_data::random_subset(&data, 20, 9).unwrap();
    let b = kd_data::random_subset(&data, 20, 9).unwrap();
    assert_eq!(a.len(), 20);
    assert_eq!(ids(&a), ids(&b));
    let mut sorted = ids(&a);
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "images must be distinct");
    assert_ne!(
        ids(&a),
        ids(&kd_data::random_subset(&data, 20, 10).unwrap())
    );
    assert!(kd_data::random_subset(&data, 51, 9).is_err());
}

#[test]
fn resident_batches_equal_host_gathered_ones() {
    let data = tiny(11);
    let tf = TransformConfig {
        pad_to: Some(4),
        mean: vec![0.5],
        std: vec![0.25],
    };
    let host = BatchLoader::new(&data, 4, tf.clone(), Device::Cpu).shuffled(3);
    let resident = host.clone().resident(true);
    for (a, b) in host.epoch(2).zip(resident.epoch(2)) {
        assert!(a.images.equal(&b.images));
        assert!(a.labels.equal(&b.labels));
        assert!(a.indices.equal(&b.indices));
        assert_eq!(b.labels.kind(), Kind::Int64);
    }
    assert_eq!(resident.epoch(2).count(), 3);
    // Through the prefetching thread as well.
    let through_thread: Vec<i64> = resident.with_epoch(2, |batches| {
        batches.flat_map(|b| to_vec_i64(&b.indices)).collect()
    });
    let direct: Vec<i64> = host.epoch(2).flat_map(|b| to_vec_i64(&b.indices)).collect();
    assert_eq!(through_thread, direct);
}

#[test]
fn a_subsets_rest_batches_without_labels_and_a_256th_class_stays_a_class() {
    let data = tiny(10);
    let (subset, rest) = kd_data::random_subset_and_rest(&data, 4, 7).unwrap();
    // The subset is random_subset's, the rest is everything else, both in original order.
    assert_eq!(
        ids(&subset),
        ids(&kd_data::random_subset(&data, 4, 7).unwrap())
    );
    let mut all = [ids(&subset), ids(&rest)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    let unlabeled = rest.without_labels().unwrap();
    assert_eq!((unlabeled.len(), unlabeled.labelled_len()), (6, 0));
    let loader = BatchLoader::new(&unlabeled, 6, TransformConfig::default(), Device::Cpu);
    let batch = loader.gather(&[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        to_vec_i64(&batch.labels),
        vec![kd_data::UNLABELED_TARGET; 6]
    );
    // With 256 classes, stored label 255 is the last class, not a missing label.
    let images = Array4::from_shape_vec((2, 1, 1, 1), vec![0u8, 1]).unwrap();
    let wide = ImageDataset::new(images, vec![255, 3], 256, Path::new("wide")).unwrap();
    assert_eq!(wide.labelled_len(), 2);
    assert!(wide.without_labels().is_none());
    let loader = BatchLoader::new(&wide, 2, TransformConfig::default(), Device::Cpu);
    assert_eq!(to_vec_i64(&loader.gather(&[0, 1]).labels), vec![255, 3]);
}

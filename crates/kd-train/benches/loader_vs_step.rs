//! Can the data pipeline keep up with training? Throughput of assembling CIFAR-shaped batches
//! of 128 (shuffled gather from the `u8` store, random crop with 4-pixel padding and flip,
//! scaling and ImageNet normalization) against one training step of the seed's 15-conv
//! student on a batch of the same size, in the same process. The loader must be many times
//! faster than the step for its background thread ([`kd_data::prefetch`]) to hide it.
//! `cargo bench -p kd-train --bench loader_vs_step`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kd_data::{AugmentConfig, BatchLoader, ImageDataset, TransformConfig};
use kd_models::{Model, ModelConfig, StudentConfig};
use ndarray::Array4;
use tch::Device;

const BATCH: usize = 128;

fn dataset(n: usize) -> ImageDataset {
    let px: Vec<u8> = (0..n * 3072)
        .map(|i| (i * 2654435761 % 251) as u8)
        .collect();
    let images = Array4::from_shape_vec((n, 3, 32, 32), px).unwrap();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    ImageDataset::new(images, labels, 10, Path::new("synthetic")).unwrap()
}

fn bench(c: &mut Criterion) {
    tch::manual_seed(0);
    let data = dataset(10 * BATCH);
    let transform = TransformConfig {
        pad_to: None,
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    };
    let loader = BatchLoader::new(&data, BATCH, transform, Device::Cpu)
        .shuffled(1)
        .augmented(AugmentConfig {
            hflip: true,
            crop_padding: 4,
        });
    let mut group = c.benchmark_group("batch of 128, 32x32x3");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Equal, long samples: in a process that loaded libtorch the clock here ticks in 4 ms
    // steps, too coarse for criterion's default first samples of one iteration.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    let mut epoch = 0;
    group.bench_function("loader: gather + augment + normalize", |b| {
        b.iter(|| {
            epoch += 1;
            loader.epoch(epoch).next().unwrap()
        })
    });
    let student = Model::new(
        &ModelConfig::Student(StudentConfig::default()),
        3,
        32,
        10,
        Device::Cpu,
    )
    .unwrap();
    let mut opt = kd_train::Adam::new(student.var_store(), 1e-3, 0.0);
    let batch = loader.epoch(0).next().unwrap();
    group.sample_size(10);
    group.bench_function("student train step (f32)", |b| {
        b.iter(|| {
            let loss = student
                .forward_t(&batch.images, true)
                .cross_entropy_for_logits(&batch.labels);
            opt.backward_step(&loss).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

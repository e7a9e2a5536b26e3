//! What the teacher costs a distillation epoch: one epoch of the quickstart's student
//! (3 blocks of two 3x3 convs, width 16) on 2,000 28x28 images, batch 32, trained on
//! labels alone (`scratch`), against the quickstart teacher's cached logits
//! (`distill-cached`), and with that teacher run on every batch (`distill-live`).
//! `cargo bench -p kd-train --bench distill_epoch`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use kd_core::{CacheDtype, Distiller, HintonKdConfig};
use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::{CnnConfig, Model, ModelConfig, StudentConfig};
use kd_train::{fit, Objective, TrainConfig};
use ndarray::Array4;
use tch::Device;

fn dataset(n: usize) -> ImageDataset {
    let px: Vec<u8> = (0..n * 784).map(|i| (i * 2654435761 % 251) as u8).collect();
    let images = Array4::from_shape_vec((n, 1, 28, 28), px).unwrap();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    ImageDataset::new(images, labels, 10, Path::new("synthetic")).unwrap()
}

fn bench(c: &mut Criterion) {
    tch::manual_seed(0);
    let (train, val) = (dataset(2000), dataset(32));
    let tf = TransformConfig::default();
    let teacher_cfg = ModelConfig::Cnn(CnnConfig {
        channels: vec![32, 64, 128],
        convs_per_stage: 2,
        hidden: 256,
        dropout: 0.3,
    });
    let student_cfg = ModelConfig::Student(StudentConfig {
        blocks: 3,
        convs_per_block: 2,
        width: 16,
    });
    let teacher = Model::new(&teacher_cfg, 1, 28, 10, Device::Cpu).unwrap();
    let all = |d| BatchLoader::new(d, 1000, tf.clone(), Device::Cpu);
    let (train_cache, val_cache) = (
        kd_train::cache_teacher_logits(&teacher, &all(&train), CacheDtype::F32).unwrap(),
        kd_train::cache_teacher_logits(&teacher, &all(&val), CacheDtype::F32).unwrap(),
    );
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let mut config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        ..Default::default()
    };
    config.early_stopping.enabled = false;
    config.reduce_lr.enabled = false;
    let loader = BatchLoader::new(&train, 32, tf.clone(), Device::Cpu).shuffled(1);
    let val_loader = BatchLoader::new(&val, 32, tf.clone(), Device::Cpu);
    let cached = Objective::Distill(Distiller::cached(&train_cache, &val_cache, &loss));
    let live = Objective::Distill(Distiller::live(&teacher, &loss));
    let mut group = c.benchmark_group("student epoch, 2000 images");
    group.sample_size(10);
    for (name, objective) in [
        ("scratch", &Objective::CrossEntropy),
        ("distill-cached", &cached),
        ("distill-live", &live),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let student = Model::new(&student_cfg, 1, 28, 10, Device::Cpu).unwrap();
                fit(&student, &loader, &val_loader, objective, &config, name).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

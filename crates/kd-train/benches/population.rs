//! Fused populations against solo students (HFTA; Wang et al., MLSys 2021): one training
//! step — forward, cross-entropy, backward, Adam — of K quickstart students (3 blocks of two
//! 3x3 convs, width 16, 28x28 grey images, batch 32; float32, and bf16 autocast where the
//! CPU computes bf16 natively) as one
//! [`kd_models::population::StudentPopulation`], against K solo students stepped one after
//! another on the same batch. Throughput is member-images per second (K · 32 per step).
//! `cargo bench -p kd-train --bench population`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kd_models::population::{population_cross_entropy, Layout, StudentPopulation};
use kd_models::{native_precision, Model, ModelConfig, Precision, StudentConfig};
use tch::nn::{Adam, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 32;

fn student() -> StudentConfig {
    StudentConfig {
        blocks: 3,
        convs_per_block: 2,
        width: 16,
    }
}

fn bench(c: &mut Criterion) {
    tch::manual_seed(0);
    let images = Tensor::rand([BATCH, 1, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [BATCH], (Kind::Int64, Device::Cpu));
    let mut precisions = vec![Precision::F32];
    if native_precision(Device::Cpu).precision == Precision::Bf16 {
        precisions.push(Precision::Bf16);
    }
    for (k, precision) in [1usize, 4, 12, 32]
        .into_iter()
        .flat_map(|k| precisions.iter().map(move |p| (k, *p)))
    {
        let name = precision.name();
        let mut group = c.benchmark_group(format!("K={k} students, batch 32, {name}"));
        group.throughput(Throughput::Elements(k as u64 * BATCH as u64));
        // Equal, long samples: in a process that loaded libtorch the clock ticks coarsely.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        let config = ModelConfig::Student(student());
        let solos: Vec<Model> = (0..k)
            .map(|_| {
                let mut m = Model::new(&config, 1, 28, 10, Device::Cpu).unwrap();
                m.set_precision(precision).unwrap();
                m
            })
            .collect();
        let mut opts: Vec<_> = solos
            .iter()
            .map(|m| Adam::default().build(m.var_store(), 1e-3).unwrap())
            .collect();
        group.bench_function("solo, one after another", |b| {
            b.iter(|| {
                for (m, opt) in solos.iter().zip(&mut opts) {
                    let loss = m.forward_t(&images, true).cross_entropy_for_logits(&labels);
                    opt.backward_step(&loss);
                }
            })
        });
        let pop = StudentPopulation::of_models(
            &student(),
            &solos.iter().collect::<Vec<_>>(),
            Layout::Grouped,
        )
        .unwrap();
        let mut opt = Adam::default().build(pop.var_store(), 1e-3).unwrap();
        group.bench_function("fused population", |b| {
            b.iter(|| {
                let logits = pop.forward_t(&images);
                opt.backward_step(&population_cross_entropy(&logits, &labels));
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Cost of each logit distillation loss, forward and backward, on a batch of 128 student and
//! teacher logits for 10 classes (CIFAR-10) and 100 classes (CIFAR-100), on the CPU.
//! `cargo bench -p kd-core --bench losses`.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use kd_core::{DkdConfig, HintonKdConfig, KerasKdConfig, LogitStandardKdConfig, LossConfig};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    tch::manual_seed(0);
    let losses = [
        ("keras-kd", LossConfig::KerasKd(KerasKdConfig::default())),
        ("hinton", LossConfig::Hinton(HintonKdConfig::default())),
        ("dkd", LossConfig::Dkd(DkdConfig::default())),
        ("lskd", LossConfig::Lskd(LogitStandardKdConfig::default())),
    ];
    let mut group = c.benchmark_group("loss forward + backward, batch 128");
    group.throughput(Throughput::Elements(128));
    // Equal, long samples: in a process that loaded libtorch the clock here ticks in 4 ms
    // steps, too coarse for criterion's default first samples of one iteration.
    group.sampling_mode(SamplingMode::Flat);
    for classes in [10i64, 100] {
        let student =
            Tensor::randn([128, classes], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let teacher = Tensor::randn([128, classes], (Kind::Float, Device::Cpu)) * 3.0;
        let labels = Tensor::randint(classes, [128], (Kind::Int64, Device::Cpu));
        for (name, config) in &losses {
            let loss = config.build("distill").unwrap();
            group.bench_with_input(BenchmarkId::new(*name, classes), &classes, |b, _| {
                b.iter(|| {
                    let total = loss.loss(&student, &teacher, &labels).total;
                    total.backward();
                    student.grad().zero_()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

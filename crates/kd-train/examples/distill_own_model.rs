//! Distilling your own tch model with kd's loop: plain `tch::nn` teacher and student, batches
//! the program makes itself, kd-train's `Learner` (Adam, cosine schedule, early stopping on a
//! registered metric), and kd-core's DKD loss on the teacher's cached logits.
//! Run: `cargo run --release -p kd-train --example distill_own_model`.
use kd_core::{Distiller, DkdConfig, LogitCache};
use kd_data::Batch;
use kd_models::network::{Network, TchNetwork};
use kd_train::callback::{EarlyStoppingConfig, Monitor};
use kd_train::{metric::TopK, Learner, LrSchedule, TrainConfig};
use tch::nn::{self, Module};
use tch::{Device::Cpu, Kind, Tensor};

const N: i64 = 3000;

/// An MLP from 2-d points (as `[b, 2, 1, 1]` images) to 3 classes with `width` hidden units.
fn mlp(width: i64) -> TchNetwork<nn::FuncT<'static>> {
    let vs = nn::VarStore::new(Cpu);
    let lin = |name, i, o| nn::linear(vs.root() / name, i, o, Default::default());
    let net = nn::seq().add(lin("fc1", 2, width));
    let net = net.add_fn(|x| x.relu()).add(lin("fc2", width, 3));
    TchNetwork::new(vs, nn::func_t(move |x, _| net.forward(&x.flatten(1, -1))))
}

/// The points in batches of 128, with their dataset indices (the rows of cached logits).
fn batches(x: &Tensor, y: &Tensor) -> Vec<Batch> {
    (0..N)
        .step_by(128)
        .map(|start| {
            let indices = Tensor::arange_start(start, (start + 128).min(N), (Kind::Int64, Cpu));
            let images = x.index_select(0, &indices).reshape([-1, 2, 1, 1]);
            Batch {
                images,
                labels: y.index_select(0, &indices),
                indices,
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tch::manual_seed(0);
    let y = Tensor::arange(N, (Kind::Int64, Cpu)).remainder(3);
    let angle = y.to_kind(Kind::Float) * (2.0 * std::f64::consts::PI / 3.0);
    let noise = Tensor::randn([N, 2], (Kind::Float, Cpu)) * 0.6;
    let x = Tensor::stack(&[angle.cos(), angle.sin()], 1) + noise; // 3 noisy clusters
    let data = batches(&x, &y);
    let early_stopping = EarlyStoppingConfig {
        monitor: Monitor::new("val_top2_accuracy"),
        patience: 4,
        ..Default::default()
    };
    let config = TrainConfig {
        epochs: 15,
        batch_size: 128,
        lr: 1e-2,
        lr_schedule: LrSchedule::Cosine,
        early_stopping,
        ..Default::default()
    };
    let (teacher, student) = (mlp(256), mlp(4));
    let t = Learner::new(&teacher, &config)
        .phase("teacher")
        .metric(TopK::new(2))
        .fit(&data, &data)?;
    // The teacher is done: its logits for every point are computed once.
    let cache = LogitCache::from_logits(tch::no_grad(|| teacher.forward_t(&x, false)));
    let dkd = DkdConfig {
        warmup_epochs: 1,
        ..Default::default()
    }
    .build("distill")?;
    let kd = Distiller::cached(&cache, &cache, &dkd);
    let s = Learner::new(&student, &config)
        .phase("student")
        .distill(kd)
        .metric(TopK::new(2))
        .fit(&data, &data)?;
    let (t, s) = (
        t.history.last().unwrap().val_accuracy,
        s.history.last().unwrap().val_accuracy,
    );
    println!(
        "teacher accuracy {:.1}%, distilled student (4 hidden units) {:.1}%",
        100.0 * t,
        100.0 * s
    );
    assert!(s > 0.6, "the student learns the 3 classes (chance: 33%)");
    Ok(())
}

//! Distilling your own tch model: plain `tch::nn` teacher and student, kd-core's DKD loss on
//! the teacher's cached logits, kd-train's cosine schedule.
//! Run: `cargo run --release -p kd-train --example distill_own_model`.
use kd_core::{DistillLoss, DkdConfig, LogitCache};
use kd_train::LrSchedule;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device::Cpu, Kind, Tensor};

const N: i64 = 3000;

/// An MLP from 2-d points to 3 classes with `width` hidden units.
fn mlp(vs: &nn::VarStore, width: i64) -> impl Module {
    let lin = |name, i, o| nn::linear(vs.root() / name, i, o, Default::default());
    let net = nn::seq().add(lin("fc1", 2, width));
    net.add_fn(|x| x.relu()).add(lin("fc2", width, 3))
}

/// 300 Adam steps on random batches of 128 point indices, cosine-annealed from 1e-2.
fn train(vs: &nn::VarStore, loss: impl Fn(&Tensor) -> Tensor) -> Result<(), tch::TchError> {
    let mut opt = nn::Adam::default().build(vs, 1e-2)?;
    for step in 0..300 {
        opt.set_lr(1e-2 * LrSchedule::Cosine.factor(step, 300));
        opt.backward_step(&loss(&Tensor::randint(N, [128], (Kind::Int64, Cpu))));
    }
    Ok(())
}

/// Top-1 accuracy in percent.
fn accuracy(logits: Tensor, labels: &Tensor) -> f64 {
    let hits = logits.argmax(-1, false).eq_tensor(labels);
    let mean = hits.to_kind(Kind::Float).mean(Kind::Float);
    100.0 * mean.double_value(&[])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tch::manual_seed(0);
    let y = Tensor::arange(N, (Kind::Int64, Cpu)).remainder(3);
    let angle = y.to_kind(Kind::Float) * (2.0 * std::f64::consts::PI / 3.0);
    let noise = Tensor::randn([N, 2], (Kind::Float, Cpu)) * 0.6;
    let x = Tensor::stack(&[angle.cos(), angle.sin()], 1) + noise; // 3 noisy clusters
    let (t_vs, s_vs) = (nn::VarStore::new(Cpu), nn::VarStore::new(Cpu));
    let (teacher, student) = (mlp(&t_vs, 256), mlp(&s_vs, 4));
    let xs = |i: &Tensor| x.index_select(0, i);
    let ys = |i: &Tensor| y.index_select(0, i);
    let ce = |i: &Tensor| teacher.forward(&xs(i)).cross_entropy_for_logits(&ys(i));
    train(&t_vs, ce)?;
    // The teacher is done: its logits for every point are computed once.
    let cache = LogitCache::from_logits(tch::no_grad(|| teacher.forward(&x)));
    let dkd = DkdConfig::default().build("distill")?;
    dkd.begin_epoch(20); // past the paper's 20-epoch warm-up
    let kd = |i: &Tensor| dkd.loss(&student.forward(&xs(i)), &cache.gather(i, Cpu), &ys(i));
    train(&s_vs, |i| kd(i).total)?;
    let t = accuracy(teacher.forward(&x), &y);
    let s = accuracy(student.forward(&x), &y);
    println!("teacher accuracy {t:.1}%, distilled student (4 hidden units) {s:.1}%");
    assert!(s > 60.0, "the student learns the 3 classes (chance: 33%)");
    Ok(())
}

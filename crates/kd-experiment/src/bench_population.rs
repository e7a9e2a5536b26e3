//! `kd-cli bench --mode population`: fused student populations (HFTA; Wang et al., MLSys
//! 2021) against the same students fitted one after another. For each population size K,
//! K quickstart students (3 blocks of two 3x3 convs, width 16, 28x28 grey images, 10 classes)
//! distil by Hinton KD (α 0.1, T 4) from cached teacher logits on the same synthetic batches:
//! once as K solo fits ([`kd_train::fit_with`]), once as one population
//! ([`kd_train::fit_population`]) — the whole training path of a tune's rung, validation on
//! one batch included. Throughput is member-images per second (K · images trained / s); the
//! median of `rounds` alternating rounds. GFLOP/s counts a training image as three forward
//! passes of the convolutions and the dense layer.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use kd_core::{Distiller, HintonKdConfig, LogitCache};
use kd_data::Batch;
use kd_models::population::Layout;
use kd_models::{Model, ModelConfig, Precision, StudentConfig};
use kd_train::{
    fit_population, fit_with, FitHooks, Member, Objective, PopulationHooks, TrainConfig,
};
use tch::{Device, Kind, Tensor};

use crate::report::median;

/// Settings of a population bench.
#[derive(Debug, Clone)]
pub struct PopulationBench {
    /// Population sizes to time.
    pub members: Vec<usize>,
    /// Images per batch (the quickstart student's 32).
    pub batch: usize,
    /// Batches per timed epoch.
    pub steps: usize,
    /// Rounds (solo, then fused, each) whose median is reported.
    pub rounds: usize,
    /// Where the students train.
    pub device: Device,
    /// Arithmetic of their forward passes.
    pub precision: Precision,
    /// How the fused members compute.
    pub layout: Layout,
}

/// One population size's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PopulationRow {
    /// K.
    pub members: usize,
    /// Images per batch.
    pub batch: usize,
    /// `f32`, `bf16`, ...
    pub precision: String,
    /// `grouped` or `members`.
    pub layout: Layout,
    /// libtorch's CPU threads.
    pub threads: i32,
    /// Member-images per second of K solo fits, one after another.
    pub solo_images_per_s: f64,
    /// Member-images per second of the K members fused.
    pub fused_images_per_s: f64,
    /// Fused over solo.
    pub speedup: f64,
    /// Solo fits' arithmetic rate.
    pub solo_gflops: f64,
    /// The population's arithmetic rate.
    pub fused_gflops: f64,
}

/// The quickstart's student.
fn student() -> StudentConfig {
    StudentConfig {
        blocks: 3,
        convs_per_block: 2,
        width: 16,
    }
}

/// Multiply-adds ×2 of one forward pass of `s` on a 28x28 grey image, 10 classes.
fn forward_flops(s: &StudentConfig) -> f64 {
    let (mut side, mut c_in, mut flops) = (28.0, 1.0, 0.0);
    let w = s.width as f64;
    for _ in 0..s.blocks {
        for _ in 0..s.convs_per_block {
            flops += 2.0 * side * side * w * c_in * 9.0;
            c_in = w;
        }
        side = (side / 2.0_f64).floor();
    }
    flops + 2.0 * w * 10.0
}

/// The synthetic task: `steps` batches, one validation batch, the teacher's logits.
struct Task {
    train: Vec<Batch>,
    val: Vec<Batch>,
    logits: LogitCache,
}

impl Task {
    fn new(args: &PopulationBench) -> Self {
        crate::seeds::enter(crate::seeds::Stream::Bench, 0);
        let (b, dev) = (args.batch as i64, args.device);
        let n = b * (args.steps as i64 + 1);
        let images = Tensor::rand([n, 1, 28, 28], (Kind::Float, dev));
        let labels = Tensor::randint(10, [n], (Kind::Int64, dev));
        let logits = LogitCache::from_logits(Tensor::randn([n, 10], (Kind::Float, dev)) * 3.0);
        let batch = |i: i64| Batch {
            images: images.narrow(0, i * b, b),
            labels: labels.narrow(0, i * b, b),
            indices: Tensor::arange_start(i * b, (i + 1) * b, (Kind::Int64, dev)),
        };
        Self {
            train: (0..args.steps as i64).map(batch).collect(),
            val: vec![batch(args.steps as i64)],
            logits,
        }
    }
}

/// Times every population size; one row each.
pub fn bench_population(args: &PopulationBench) -> Result<Vec<PopulationRow>> {
    if args.members.contains(&0) || args.rounds == 0 || args.steps == 0 || args.batch == 0 {
        bail!("--members, --steps, --batch: expected at least 1");
    }
    let task = Task::new(args);
    let loss = HintonKdConfig::default().build("distill")?;
    let distiller = Distiller::cached(&task.logits, &task.logits, &loss);
    let config = TrainConfig {
        epochs: 1,
        batch_size: args.batch,
        ..Default::default()
    };
    let flops = 3.0 * forward_flops(&student());
    args.members
        .iter()
        .map(|&k| {
            let models = |round: usize| models(args, k, round);
            // One untimed round of each warms allocator and kernels.
            let solo = |round| solo_seconds(&task, &models(round)?, distiller, &config);
            let fused = |round| {
                let models = models(round)?;
                fused_seconds(&task, &models, distiller, &config, args.layout)
            };
            let (mut s, mut f) = (Vec::new(), Vec::new());
            for round in 0..=args.rounds {
                let (a, b) = (solo(round)?, fused(round)?);
                if round > 0 {
                    s.push(a);
                    f.push(b);
                }
            }
            let images = (k * args.batch * args.steps) as f64;
            let (solo, fused) = (images / median(&s), images / median(&f));
            Ok(PopulationRow {
                members: k,
                batch: args.batch,
                precision: args.precision.name().to_string(),
                layout: args.layout,
                threads: tch::get_num_threads(),
                solo_images_per_s: solo,
                fused_images_per_s: fused,
                speedup: fused / solo,
                solo_gflops: solo * flops / 1e9,
                fused_gflops: fused * flops / 1e9,
            })
        })
        .collect()
}

/// `k` students of their own initial weights.
fn models(args: &PopulationBench, k: usize, round: usize) -> Result<Vec<Model>> {
    (0..k)
        .map(|m| {
            tch::manual_seed((round * 1000 + m) as i64);
            let config = ModelConfig::Student(student());
            let mut model = Model::new(&config, 1, 28, 10, args.device)?;
            model.set_precision(args.precision)?;
            Ok(model)
        })
        .collect()
}

/// Seconds of one epoch of each model's solo fit, one after another.
fn solo_seconds(task: &Task, models: &[Model], d: Distiller, config: &TrainConfig) -> Result<f64> {
    let start = Instant::now();
    for m in models {
        let objective = Objective::Distill(d);
        let hooks = FitHooks::default();
        fit_with(m, &task.train, &task.val, &objective, config, "solo", hooks)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds of one epoch of the models fused, computing in `layout`.
fn fused_seconds(
    task: &Task,
    models: &[Model],
    d: Distiller,
    config: &TrainConfig,
    layout: Layout,
) -> Result<f64> {
    let members: Vec<Member> = models
        .iter()
        .enumerate()
        .map(|(k, model)| Member {
            model,
            objective: Objective::Distill(d),
            config,
            phase: format!("member {k}"),
            checkpoints: None,
        })
        .collect();
    let start = Instant::now();
    let hooks = PopulationHooks {
        layout,
        ..Default::default()
    };
    let results = fit_population(&student(), &members, &task.train, &task.val, hooks)?;
    let seconds = start.elapsed().as_secs_f64();
    for r in results {
        r.context("a member of the benchmark population failed")?;
    }
    Ok(seconds)
}

/// The rows as a markdown table.
pub fn table(rows: &[PopulationRow]) -> String {
    let mut out = String::from(
        "| K | precision | layout | threads | solo member-img/s | fused member-img/s | fused / solo | solo GFLOP/s | fused GFLOP/s |\n|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2}x | {:.1} | {:.1} |\n",
            r.members,
            r.precision,
            r.layout.name(),
            r.threads,
            r.solo_images_per_s,
            r.fused_images_per_s,
            r.speedup,
            r.solo_gflops,
            r.fused_gflops
        );
    }
    out
}

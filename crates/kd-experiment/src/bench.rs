//! `kd-cli bench`: training and inference throughput of the seed's models on synthetic
//! 32x32x3 batches, step for step what `../shared/anchors/torch_seed.py` (PyTorch eager) and
//! `keras_seed.py` time, so the numbers compare side by side:
//!
//! - `teacher`: one Adam step (lr 1e-5) of VGG19 on cross-entropy;
//! - `student`: one Adam step (lr 1e-3) of the 15-conv student on cross-entropy;
//! - `distill`: the frozen teacher's forward (inference mode, no gradient) plus a student
//!   step on the seed's loss (alpha 0.7, T 1, Keras KL);
//! - `distill-cached`: the same step with the teacher's logits gathered from a
//!   [`LogitCache`] (computed once, outside the timing);
//! - `eval`: the student's forward and argmax under no-grad.
//!
//! Every training mode steps through [`kd_train::Stepper`], the step a fit takes (its
//! non-finite checks included), so what is timed is what trains.
//! `--precision bf16|f16` runs every forward pass under libtorch's autocast
//! ([`kd_models::Precision`]); losses and the optimizer stay float32, and float16 steps
//! through the fit's loss scaler. `--cuda-graphs` runs
//! the training modes as the fit does on a GPU: each step captured once as a CUDA graph and
//! replayed ([`kd_train::graphed`]), Adam in its capturable form.
//!
//! One JSON line per mode: `impl`, `mode`, `batch`, `steps`, `images_per_s`, `device`,
//! `precision`, `threads`, `torch`.

use std::time::Instant;

use anyhow::{bail, Result};
use kd_core::{Distiller, KerasKd, KerasKdConfig, LogitCache};
use kd_models::{Model, ModelConfig, Precision, StudentConfig, VggConfig};
use kd_train::graphed::Replay;
use kd_train::{Objective, Stepper};
use tch::{Device, Kind, Tensor};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// One Adam step of VGG19 on cross-entropy.
    Teacher,
    /// One Adam step of the seed student on cross-entropy.
    Student,
    /// The frozen teacher's forward plus a student step on the seed's loss.
    Distill,
    /// A distill step with the teacher's logits read from a cache.
    DistillCached,
    /// The student's forward pass and argmax, without gradients.
    Eval,
    /// Batch-1 latency of the MODEL files named ([`crate::bench_latency`]).
    Latency,
    /// Fused student populations against solo fits ([`crate::bench_population`]).
    Population,
}

/// Settings of one `kd-cli bench` call.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// The modes to time, in order; each gives one JSON line.
    pub modes: Vec<BenchMode>,
    /// Images per synthetic batch.
    pub batch: usize,
    /// Timed steps (forward passes for `eval`) per mode.
    pub steps: usize,
    /// Untimed steps run before the timed ones.
    pub warmup: usize,
    /// Where the models and batches live.
    pub device: Device,
    /// Arithmetic of every forward pass; losses and the optimizer stay float32.
    pub precision: Precision,
    /// Inputs and convolution kernels in channels-last (NHWC) memory format.
    pub channels_last: bool,
    /// Training steps as CUDA graphs.
    pub cuda_graphs: bool,
}

/// Runs the benchmark; returns one JSON line per mode.
pub fn bench(args: &BenchArgs) -> Result<Vec<String>> {
    let graph_device = match (args.cuda_graphs, args.device) {
        (false, _) => None,
        (true, Device::Cuda(n)) => Some(n),
        (true, _) => bail!("--cuda-graphs: needs --device cuda"),
    };
    if graph_device.is_some() && args.modes.contains(&BenchMode::Eval) {
        bail!("--cuda-graphs: times training steps (teacher, student, distill, distill-cached), not eval");
    }
    let seed = SeedModels::new(args)?;
    args.modes
        .iter()
        .map(|&mode| {
            let seconds = time_mode(&seed, args, mode, graph_device)?;
            Ok(json_line(args, mode, seconds))
        })
        .collect()
}

/// The seed's teacher and student on one synthetic batch, with the seed's loss and the
/// teacher's logits of the batch cached.
struct SeedModels {
    x: Tensor,
    y: Tensor,
    indices: Tensor,
    teacher: Model,
    student: Model,
    kd: KerasKd,
    cache: LogitCache,
}

impl SeedModels {
    fn new(args: &BenchArgs) -> Result<Self> {
        crate::seeds::enter(crate::seeds::Stream::Bench, 0);
        let (b, dev) = (args.batch as i64, args.device);
        let mut x = Tensor::rand([b, 3, 32, 32], (Kind::Float, dev));
        let y = Tensor::randint(10, [b], (Kind::Int64, dev));
        let vgg = ModelConfig::Vgg(VggConfig::default());
        let seed_student = ModelConfig::Student(StudentConfig::default());
        let mut teacher = Model::new(&vgg, 3, 32, 10, dev)?;
        let mut student = Model::new(&seed_student, 3, 32, 10, dev)?;
        teacher.set_precision(args.precision)?;
        student.set_precision(args.precision)?;
        if args.channels_last {
            x = kd_models::memory_format::channels_last(&x);
            teacher.use_channels_last();
            student.use_channels_last();
        }
        let kd = KerasKdConfig::default().build("distill")?;
        let indices = Tensor::arange(b, (Kind::Int64, dev));
        let cache = LogitCache::from_logits(tch::no_grad(|| teacher.forward_t(&x, false)));
        Ok(Self {
            x,
            y,
            indices,
            teacher,
            student,
            kd,
            cache,
        })
    }
}

/// Seconds of `args.steps` steps of `mode` after `args.warmup` untimed ones. Training modes
/// step through the fit's own [`Stepper`] (graphed with `--cuda-graphs`); the loss is read
/// back once per step, as a progress display would.
fn time_mode(
    s: &SeedModels,
    args: &BenchArgs,
    mode: BenchMode,
    graph_device: Option<usize>,
) -> Result<f64> {
    let (model, lr) = match mode {
        BenchMode::Teacher => (&s.teacher, 1e-5),
        BenchMode::Latency => bail!("--mode latency times model files, not steps"),
        BenchMode::Population => bail!("--mode population times populations, alone"),
        _ => (&s.student, 1e-3),
    };
    if mode == BenchMode::Eval {
        let mut eval = || -> Result<f64> {
            let hits = tch::no_grad(|| s.student.forward_t(&s.x, false).argmax(1, false));
            Ok(hits.sum(Kind::Int64).int64_value(&[]) as f64)
        };
        return timed(&mut eval, args);
    }
    let mut stepper = Stepper::new(model, lr, 0.0);
    if let Some(n) = graph_device {
        stepper.use_graphs(Replay::Graph(n), None);
    }
    let batch = kd_data::Batch {
        images: s.x.shallow_clone(),
        labels: s.y.shallow_clone(),
        indices: s.indices.shallow_clone(),
    };
    let objective = match mode {
        BenchMode::Distill => Objective::Distill(Distiller::live(&s.teacher, &s.kd)),
        BenchMode::DistillCached => {
            Objective::Distill(Distiller::cached(&s.cache, &s.cache, &s.kd))
        }
        _ => Objective::CrossEntropy,
    };
    let mut step = || -> Result<f64> {
        let step = stepper.step(model, &objective, &batch)?;
        let (_, loss) = step.output.expect("one process steps on the whole batch");
        Ok(loss.total.double_value(&[]))
    };
    timed(&mut step, args)
}

/// Runs `step` `args.warmup` times, then times `args.steps` runs (synchronizing a GPU).
fn timed(step: &mut dyn FnMut() -> Result<f64>, args: &BenchArgs) -> Result<f64> {
    for _ in 0..args.warmup {
        step()?;
    }
    let sync = || {
        if let Device::Cuda(_) = args.device {
            tch::Cuda::synchronize(0);
        }
    };
    sync();
    let start = Instant::now();
    for _ in 0..args.steps {
        step()?;
    }
    sync();
    let seconds = start.elapsed().as_secs_f64();
    if seconds == 0.0 {
        bail!(
            "--steps: {} timed steps took less than the clock's resolution; time more steps",
            args.steps
        );
    }
    Ok(seconds)
}

/// The JSON line of `mode`, timed at `seconds` for `args.steps` steps.
fn json_line(args: &BenchArgs, mode: BenchMode, seconds: f64) -> String {
    serde_json::json!({
        "impl": format!(
            "kd{}{}",
            if args.channels_last { "-cl" } else { "" },
            if args.cuda_graphs { "-graphs" } else { "" }
        ),
        "mode": clap::ValueEnum::to_possible_value(&mode).map(|v| v.get_name().to_string()),
        "batch": args.batch,
        "steps": args.steps,
        "images_per_s": (args.batch * args.steps) as f64 / seconds,
        "device": crate::env::device_name(args.device),
        "precision": args.precision.name(),
        "threads": tch::get_num_threads(),
        "torch": crate::env::torch_version(),
    })
    .to_string()
}

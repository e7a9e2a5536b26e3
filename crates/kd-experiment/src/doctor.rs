//! `kd-cli doctor [--device cpu|cuda]`: checks that this machine runs kd correctly, in well
//! under a minute, and prints one table; the exit status is non-zero if any check fails.
//!
//! On a GPU, the seed's models (the 15-conv student and VGG19) compute on the device what
//! they compute on the CPU, in a forward pass and in a training step (Adam), within float32
//! tolerances that allow cuDNN's algorithms and TF32; on the CPU, where there is nothing to
//! compare against, the same passes must be finite and repeat to the last bit, and a few
//! steps on one batch must lower its loss. Then: bfloat16 autocast is really active (its
//! logits differ from float32's, within bfloat16's precision), an all-reduce at world size
//! 1 returns its input (Gloo, PyTorch's CPU backend; on a GPU also NCCL, its GPU backend), and
//! a checkpoint written from the device and read back is bit-identical. On a GPU, training
//! steps captured as CUDA graphs and replayed must take the eager steps (to float32
//! tolerance); on the CPU that check is skipped.

use std::time::Instant;

use anyhow::Result;
use kd_models::{Model, ModelConfig, Precision, StudentConfig, VggConfig};
use kd_train::graphed::Replay;
use tch::{Device, Kind, Tensor};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The check passed.
    Pass,
    /// The check failed: the machine is not healthy.
    Fail,
    /// Not applicable here, or not available in this version.
    Skip,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked, e.g. `all-reduce at world size 1 (gloo)`.
    pub name: String,
    /// Whether it passed, failed or was skipped.
    pub status: Status,
    /// What was measured, or why the check failed or was skipped.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Doctor {
    /// The device checked.
    pub device: Device,
    /// `(name, value)` lines printed above the checks: versions, CUDA, threads, device.
    pub facts: Vec<(String, String)>,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Wall time of all the checks, in seconds.
    pub seconds: f64,
}

impl Doctor {
    /// Whether every check passed or was skipped.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The report as text: the facts, one row per check, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.facts {
            out += &format!("{k:<14}{v}\n");
        }
        out.push('\n');
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out += &format!("{status}  {:<width$}  {}\n", c.name, c.detail);
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        out += &format!(
            "\n{} on {}: {} passed, {failed} failed, {} skipped ({:.1} s)\n",
            if failed == 0 {
                "healthy"
            } else {
                "NOT HEALTHY"
            },
            crate::env::device_name(self.device),
            self.checks
                .iter()
                .filter(|c| c.status == Status::Pass)
                .count(),
            self.checks
                .iter()
                .filter(|c| c.status == Status::Skip)
                .count(),
            self.seconds
        );
        out
    }
}

/// The largest `|a - b| - (atol + rtol·|b|)`: at most 0 when `a` is within tolerance of `b`.
fn excess(a: &Tensor, b: &Tensor, atol: f64, rtol: f64) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Float);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Float);
    ((&a - &b).abs() - (b.abs() * rtol + atol))
        .max()
        .double_value(&[])
}

/// The worst [`excess`] over the variables of two models of one architecture, by name.
fn worst_variable_excess(a: &Model, b: &Model, atol: f64, rtol: f64) -> f64 {
    let theirs = b.var_store().variables();
    a.var_store()
        .variables()
        .iter()
        .map(|(name, t)| excess(t, &theirs[name], atol, rtol))
        .fold(f64::NEG_INFINITY, f64::max)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Float);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Float);
    (a - b).abs().max().double_value(&[])
}

fn check(name: &str, pass: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        status: if pass { Status::Pass } else { Status::Fail },
        detail,
    }
}

/// A model of `config` on `device` with the same (seeded) weights on every device.
fn seeded(config: &ModelConfig, device: Device) -> Result<Model> {
    crate::seeds::enter(crate::seeds::Stream::Doctor(0), 0);
    let cpu = Model::new(config, 3, 32, 10, Device::Cpu)?;
    if device == Device::Cpu {
        return Ok(cpu);
    }
    let model = Model::new(config, 3, 32, 10, device)?;
    let weights = cpu
        .var_store()
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.to_device(device)))
        .collect();
    model
        .copy_from(&weights, false)
        .map_err(anyhow::Error::msg)?;
    Ok(model)
}

/// Float32 tolerance between devices: cuDNN picks other algorithms (and TF32) than the CPU.
const DEVICE_TOLERANCE: (f64, f64) = (1e-2, 1e-2);

/// Runs every check on `device`.
pub fn doctor(device: Device) -> Result<Doctor> {
    let start = Instant::now();
    let mut facts = vec![
        ("kd-cli".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("torch".to_string(), crate::env::torch_version()),
        (
            "cuda".to_string(),
            format!(
                "{} ({} device(s)), cuDNN {}",
                tch::Cuda::is_available(),
                tch::Cuda::device_count(),
                if tch::Cuda::cudnn_is_available() {
                    tch::utils::version_cudnn().to_string()
                } else {
                    "none".into()
                }
            ),
        ),
        ("threads".to_string(), tch::get_num_threads().to_string()),
        (
            "cuda graphs".to_string(),
            if kd_sys::cuda_graph::cuda_graphs_built() {
                "built in (with NCCL)".to_string()
            } else {
                "not built (no CUDA headers when kd was built)".to_string()
            },
        ),
    ];
    facts.push(("device".to_string(), crate::env::device_name(device)));
    let student = ModelConfig::Student(StudentConfig::default());
    let teacher = ModelConfig::Vgg(VggConfig::default());
    crate::seeds::enter(crate::seeds::Stream::Doctor(1), 0);
    let x = Tensor::rand([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 3, 7, 9]);
    let mut checks = Vec::new();
    for (label, config) in [("seed student", &student), ("VGG19 teacher", &teacher)] {
        checks.push(forward_check(label, config, device, &x)?);
    }
    checks.push(training_check(&student, device, &x, &y)?);
    checks.push(bf16_check(&student, device, &x)?);
    checks.push(all_reduce_check(device, kd_sys::dist::Backend::Gloo));
    checks.push(match device {
        Device::Cuda(n) => all_reduce_check(device, kd_sys::dist::Backend::Nccl(n)),
        _ => Check {
            name: "all-reduce at world size 1 (nccl)".into(),
            status: Status::Skip,
            detail: "needs a CUDA device".into(),
        },
    });
    checks.push(checkpoint_check(&student, device)?);
    // Last: a capture that fails leaves this process's CUDA state mid-capture (see
    // `CudaGraph::capture`), so no check may run on the device after it; its row still
    // reports the error.
    checks.push(graph_check(&student, device, &x, &y)?);
    Ok(Doctor {
        device,
        facts,
        checks,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The forward pass on `device` against the CPU's, or (on the CPU) against itself.
fn forward_check(label: &str, config: &ModelConfig, device: Device, x: &Tensor) -> Result<Check> {
    let name = format!("{label} forward");
    let model = seeded(config, device)?;
    let run = |m: &Model| tch::no_grad(|| m.forward_t(&x.to_device(device), false));
    let out = run(&model);
    let finite = bool::try_from(out.isfinite().all())?;
    if device == Device::Cpu {
        let again = run(&model);
        let same = bool::try_from(out.eq_tensor(&again).all())?;
        return Ok(check(
            &name,
            finite && same,
            format!("finite: {finite}, repeats bit for bit: {same}"),
        ));
    }
    let cpu = seeded(config, Device::Cpu)?;
    let reference = tch::no_grad(|| cpu.forward_t(x, false));
    let (atol, rtol) = DEVICE_TOLERANCE;
    let e = excess(&out, &reference, atol, rtol);
    Ok(check(
        &format!("{name} = CPU"),
        finite && e <= 0.0,
        format!(
            "max |diff| {:.2e} (tolerance {atol} + {rtol}·|x|)",
            max_diff(&out, &reference)
        ),
    ))
}

/// Adam steps of the student on one batch: on a GPU the first step's parameters against the
/// CPU's; on the CPU, five steps must lower the batch's loss.
fn training_check(config: &ModelConfig, device: Device, x: &Tensor, y: &Tensor) -> Result<Check> {
    let steps = |device: Device, n: usize| -> Result<(Vec<f64>, Model)> {
        let model = seeded(config, device)?;
        let mut stepper = kd_train::Stepper::new(&model, 1e-3, 0.0);
        let batch = one_batch(x, y, device);
        let mut losses = Vec::new();
        for _ in 0..n {
            let step = stepper.step(&model, &kd_train::Objective::CrossEntropy, &batch)?;
            let (_, loss) = step.output.expect("one process steps on the whole batch");
            losses.push(loss.total.double_value(&[]));
        }
        Ok((losses, model))
    };
    if device == Device::Cpu {
        let (losses, _) = steps(device, 6)?;
        let lowered = losses[5] < losses[0] && losses.iter().all(|l| l.is_finite());
        return Ok(check(
            "student training step",
            lowered,
            format!("loss {:.4} -> {:.4} in 5 Adam steps", losses[0], losses[5]),
        ));
    }
    let (_, on_device) = steps(device, 1)?;
    let (_, on_cpu) = steps(Device::Cpu, 1)?;
    let (atol, rtol) = DEVICE_TOLERANCE;
    let worst = worst_variable_excess(&on_device, &on_cpu, atol, rtol);
    Ok(check(
        "student training step = CPU",
        worst <= 0.0,
        format!("parameters after one Adam step, worst excess over tolerance {worst:.2e}"),
    ))
}

/// bfloat16 autocast: logits differ from float32's (it is active) but stay close.
fn bf16_check(config: &ModelConfig, device: Device, x: &Tensor) -> Result<Check> {
    let mut model = seeded(config, device)?;
    let x = x.to_device(device);
    let f32_logits = tch::no_grad(|| model.forward_t(&x, false));
    if let Err(e) = model.set_precision(Precision::Bf16) {
        return Ok(check("bf16 autocast active", false, e.to_string()));
    }
    let bf16_logits = tch::no_grad(|| model.forward_t(&x, false));
    let diff = max_diff(&bf16_logits, &f32_logits);
    let scale = f32_logits.abs().max().double_value(&[]).max(1e-6);
    // bfloat16 keeps 8 bits of mantissa: through 15 convolutions a few percent of the
    // logits' size; float32 rounding alone stays below 1e-6 of it.
    let active = diff > 1e-6 * scale && diff < 0.1 * scale;
    Ok(check(
        "bf16 autocast active",
        active,
        format!("max |bf16 - f32| {diff:.2e} for logits up to {scale:.2e}"),
    ))
}

/// An all-reduce at world size 1 through `backend` on this machine's loopback: Gloo on CPU
/// tensors, NCCL on the GPU's.
fn all_reduce_check(device: Device, backend: kd_sys::dist::Backend) -> Check {
    let name = format!("all-reduce at world size 1 ({})", backend.name());
    let tensor_device = match backend {
        kd_sys::dist::Backend::Gloo => Device::Cpu,
        kd_sys::dist::Backend::Nccl(_) => device,
    };
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => return check(&name, false, format!("no free port on 127.0.0.1: {e}")),
    };
    let rendezvous = kd_sys::dist::Rendezvous {
        host: "127.0.0.1".into(),
        port,
        rank: 0,
        world_size: 1,
        serve_store: true,
        prefix: String::new(),
        gloo_host: "127.0.0.1".into(),
        timeout: std::time::Duration::from_secs(30),
        backend,
    };
    let result = kd_sys::dist::ProcessGroup::join(&rendezvous).and_then(|group| {
        let t = Tensor::from_slice(&[1.5f32, -2.0, 3.25]).to_device(tensor_device);
        group.all_reduce_sum(std::slice::from_ref(&t))?;
        Ok(Vec::<f32>::try_from(&t.to_device(Device::Cpu)).unwrap_or_default())
    });
    match result {
        Ok(v) => check(&name, v == [1.5, -2.0, 3.25], format!("returned {v:?}")),
        Err(e) => check(&name, false, e.to_string()),
    }
}

/// On a GPU: five training steps of the student on one batch size, graphed (warm-up,
/// capture, replays) against the same static-buffer steps run eagerly, both through the
/// fit's Stepper with Adam's capturable form;
/// parameters and the last loss must agree to float32 tolerance. Skipped on the CPU.
fn graph_check(config: &ModelConfig, device: Device, x: &Tensor, y: &Tensor) -> Result<Check> {
    let name = "CUDA graph steps = eager steps";
    let Device::Cuda(index) = device else {
        return Ok(Check {
            name: name.into(),
            status: Status::Skip,
            detail: "needs a CUDA device".into(),
        });
    };
    if !kd_sys::cuda_graph::cuda_graphs_built() {
        return Ok(check(
            name,
            false,
            "this kd was built without CUDA graphs".into(),
        ));
    }
    let batch = one_batch(x, y, device);
    let objective = kd_train::Objective::CrossEntropy;
    // The fit's Stepper both ways: graphs replayed, or the same static-buffer steps eagerly.
    let train = |replay: Replay| -> Result<(Model, f64)> {
        let model = seeded(config, device)?;
        let mut stepper = kd_train::Stepper::new(&model, 1e-3, 0.0);
        stepper.use_graphs(replay, None);
        let mut last = f64::NAN;
        for _ in 0..5 {
            let step = stepper.step(&model, &objective, &batch)?;
            let (_, loss) = step.output.expect("one process steps on the whole batch");
            last = loss.total.double_value(&[]);
        }
        Ok((model, last))
    };
    let (graphed, graphed_loss) = match train(Replay::Graph(index)) {
        Ok(trained) => trained,
        Err(e) => return Ok(check(name, false, format!("graphed steps failed: {e:#}"))),
    };
    let (eager, eager_loss) = train(Replay::Eager)?;
    let (atol, rtol) = (1e-4, 1e-4);
    let worst = worst_variable_excess(&graphed, &eager, atol, rtol);
    let loss_close = (graphed_loss - eager_loss).abs() <= atol + rtol * eager_loss.abs();
    Ok(check(
        name,
        worst <= 0.0 && loss_close,
        format!(
            "5 steps: loss {graphed_loss:.6} vs {eager_loss:.6}; parameters' worst excess over {atol} + {rtol}·|x|: {worst:.2e}"
        ),
    ))
}

/// `x` and `y` on `device` as one batch of a loader.
fn one_batch(x: &Tensor, y: &Tensor, device: Device) -> kd_data::Batch {
    let (images, labels) = (x.to_device(device), y.to_device(device));
    let indices = Tensor::arange(images.size()[0], (Kind::Int64, device));
    kd_data::Batch {
        images,
        labels,
        indices,
    }
}

/// A model saved from `device` and loaded into a fresh one on `device`: bit-identical.
fn checkpoint_check(config: &ModelConfig, device: Device) -> Result<Check> {
    let model = seeded(config, device)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("doctor.safetensors");
    model.save(&path)?;
    crate::seeds::enter(crate::seeds::Stream::Doctor(99), 0);
    let mut fresh = Model::new(config, 3, 32, 10, device)?;
    fresh.load(&path)?;
    let theirs = fresh.var_store().variables();
    let identical = model
        .var_store()
        .variables()
        .iter()
        .all(|(name, t)| t.equal(&theirs[name]));
    Ok(check(
        "checkpoint save/load round trip",
        identical,
        format!("{} tensors bit-identical: {identical}", theirs.len()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failed_check_makes_the_machine_unhealthy() {
        let row = |status| Check {
            name: "x".into(),
            status,
            detail: String::new(),
        };
        let mut d = Doctor {
            device: Device::Cpu,
            facts: vec![],
            checks: vec![row(Status::Pass), row(Status::Skip)],
            seconds: 0.0,
        };
        assert!(d.healthy());
        assert!(d
            .text()
            .contains("healthy on cpu: 1 passed, 0 failed, 1 skipped"));
        d.checks.push(row(Status::Fail));
        assert!(!d.healthy());
        assert!(d
            .text()
            .contains("NOT HEALTHY on cpu: 1 passed, 1 failed, 1 skipped"));
    }

    #[test]
    fn excess_is_the_worst_distance_beyond_the_tolerance() {
        let b = Tensor::from_slice(&[1.0f32, -2.0, 10.0]);
        let a = Tensor::from_slice(&[1.05f32, -2.0, 10.0]);
        // |1.05 - 1| - (0.01 + 0.01·1) = 0.03; the other entries are well inside.
        assert!((excess(&a, &b, 0.01, 0.01) - 0.03).abs() < 1e-6);
        assert!(excess(&b, &b, 0.0, 0.0) <= 0.0);
    }
}

//! Graphed training steps (`kd_train::graphed`, through the fit's `Stepper`) on the CPU,
//! where they run eagerly on their static buffers: the same steps as the Stepper's plain
//! path to the last bit (on one machine, same threads), one capture per batch size, a
//! non-finite step skipped on the device and counted, and `cuda_graphs = true` refused where
//! there is no GPU.

use std::cell::Cell;

use kd_core::{DistillLoss, Distiller, LossParts};
use kd_data::{Batch, TransformConfig};
use kd_models::{Model, ModelConfig, StudentConfig};
use kd_train::graphed::Replay;
use kd_train::{fit, Objective, Stepped, Stepper, TrainConfig, TrainError};
use tch::{Device, Kind, Tensor};

fn student(seed: i64) -> Model {
    tch::manual_seed(seed);
    let config = ModelConfig::Student(StudentConfig {
        blocks: 2,
        convs_per_block: 1,
        width: 4,
    });
    Model::new(&config, 1, 8, 4, Device::Cpu).unwrap()
}

/// Batch `i` of `n` deterministic images.
fn batch(i: i64, n: i64) -> Batch {
    let images = (Tensor::arange(n * 64, (Kind::Float, Device::Cpu)) * (0.37 + i as f64))
        .sin()
        .reshape([n, 1, 8, 8]);
    let labels = (Tensor::arange(n, (Kind::Int64, Device::Cpu)) + i).remainder(4);
    let indices = Tensor::arange(n, (Kind::Int64, Device::Cpu)) + i * n;
    Batch {
        images,
        labels,
        indices,
    }
}

fn trainable(stepper: &Stepper) -> Vec<Tensor> {
    let opt = stepper.optimizer();
    opt.params().iter().map(Tensor::shallow_clone).collect()
}

fn weights(model: &Model) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = model.var_store().variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[test]
fn graphed_steps_take_the_plain_loops_steps_with_one_capture_per_batch_size() {
    let _rng = crate::common::global_rng();
    let (graphed_model, plain_model) = (student(3), student(3));
    let objective = Objective::CrossEntropy;
    let mut graphed = Stepper::new(&graphed_model, 3e-3, 1e-4);
    graphed.use_graphs(Replay::Eager, None);
    let mut plain = Stepper::new(&plain_model, 3e-3, 1e-4);
    // Both in the capturable form, so both take the same arithmetic.
    plain.optimizer_mut().capturable();
    // Four epochs of three full batches (8) and a partial one (5); the rate drops once.
    // Each size warms up on three batches and is captured on its fourth.
    for step in 0..16i64 {
        let size = if step % 4 == 3 { 5 } else { 8 };
        let b = batch(step, size);
        if step == 6 {
            graphed.set_lr(1e-3);
            plain.set_lr(1e-3);
        }
        let graphed_step = graphed.step(&graphed_model, &objective, &b).unwrap();
        let plain_step = plain.step(&plain_model, &objective, &b).unwrap();
        assert_eq!(plain_step.stepped, Stepped::Taken);
        let (logits, loss) = graphed_step.output.unwrap();
        let (plain_logits, plain_loss) = plain_step.output.unwrap();
        assert!(logits.equal(&plain_logits), "logits differ at step {step}");
        assert!(
            loss.total.equal(&plain_loss.total),
            "loss differs at step {step}"
        );
    }
    assert_eq!(
        graphed.captures(),
        2,
        "one capture per batch size (8 and 5)"
    );
    assert_eq!(graphed.take_nonfinite(), 0);
    for ((name, g), (_, p)) in weights(&graphed_model).iter().zip(&weights(&plain_model)) {
        assert!(g.equal(p), "{name} differs after 16 steps");
    }
    // The optimizer state reads back from the device for checkpoints: 16 steps each.
    let (_, steps) = graphed.optimizer().state();
    assert!(steps.values().all(|&n| n == 16), "{steps:?}");
}

/// Cross-entropy, with a NaN loss at call `bad_call` (from 1).
#[derive(Debug)]
struct NanAt {
    bad_call: usize,
    calls: Cell<usize>,
}

impl DistillLoss for NanAt {
    fn loss(&self, student: &Tensor, _teacher: &Tensor, labels: &Tensor) -> LossParts {
        self.calls.set(self.calls.get() + 1);
        let total = student.cross_entropy_for_logits(labels);
        LossParts {
            total: if self.calls.get() == self.bad_call {
                total * f64::NAN
            } else {
                total
            },
            parts: Vec::new(),
        }
    }
}

#[test]
fn a_non_finite_step_leaves_the_weights_and_is_counted_on_the_device() {
    let _rng = crate::common::global_rng();
    let (model, teacher) = (student(5), student(6));
    let loss = NanAt {
        bad_call: 4,
        calls: Cell::new(0),
    };
    let objective = Objective::Distill(Distiller::live(&teacher, &loss));
    let mut stepper = Stepper::new(&model, 1e-2, 0.0);
    stepper.use_graphs(Replay::Eager, Some(8));
    let params = trainable(&stepper);
    for step in 0..3 {
        let _ = stepper.step(&model, &objective, &batch(step, 8)).unwrap();
    }
    let before: Vec<Tensor> = params.iter().map(|p| p.detach().copy()).collect();
    // The fourth call's loss is NaN: nothing moves, one step is counted, once.
    let _ = stepper.step(&model, &objective, &batch(3, 8)).unwrap();
    for (p, b) in params.iter().zip(&before) {
        assert!(p.equal(b), "a non-finite step changed the weights");
    }
    assert_eq!(stepper.take_nonfinite(), 1);
    assert_eq!(stepper.take_nonfinite(), 0, "the count resets when read");
    let _ = stepper.step(&model, &objective, &batch(4, 8)).unwrap();
    assert!(
        !params[0].equal(&before[0]),
        "the next finite step moves again"
    );
    // Only batches of 8 are graphed: a partial batch steps eagerly, with no capture of its own.
    let _ = stepper.step(&model, &objective, &batch(5, 5)).unwrap();
    assert_eq!(stepper.captures(), 1);
    let (_, steps) = stepper.optimizer().state();
    assert!(
        steps.values().all(|&n| n == 5),
        "5 steps taken of 6: {steps:?}"
    );
}

#[test]
fn an_eager_non_finite_step_is_named_and_leaves_the_weights() {
    let _rng = crate::common::global_rng();
    let (model, teacher) = (student(7), student(8));
    let loss = NanAt {
        bad_call: 2,
        calls: Cell::new(0),
    };
    let objective = Objective::Distill(Distiller::live(&teacher, &loss));
    let mut stepper = Stepper::new(&model, 1e-2, 0.0);
    let first = stepper.step(&model, &objective, &batch(0, 8)).unwrap();
    assert_eq!(first.stepped, Stepped::Taken);
    let before: Vec<Tensor> = trainable(&stepper)
        .iter()
        .map(|p| p.detach().copy())
        .collect();
    let second = stepper.step(&model, &objective, &batch(1, 8)).unwrap();
    assert_eq!(second.stepped, Stepped::NonFinite("loss (NaN)".into()));
    for (p, b) in trainable(&stepper).iter().zip(&before) {
        assert!(p.equal(b), "a non-finite step changed the weights");
    }
}

#[test]
fn cuda_graphs_true_without_a_gpu_is_a_config_error_naming_the_key() {
    let _rng = crate::common::global_rng();
    if tch::Cuda::is_available() {
        return;
    }
    let data = crate::common::quadrants(32, 0, 120);
    let model = student(1);
    let loader = kd_data::BatchLoader::new(&data, 8, TransformConfig::default(), Device::Cpu);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 8,
        cuda_graphs: Some(true),
        ..Default::default()
    };
    let outcome = fit(
        &model,
        &loader,
        &loader,
        &Objective::CrossEntropy,
        &config,
        "student",
    );
    let Err(err) = outcome else {
        panic!("cuda_graphs = true was accepted without a GPU");
    };
    assert!(matches!(err, TrainError::InvalidConfig { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "student.cuda_graphs: expected true only with a CUDA device, got true"
    );
}

//! A NaN or an infinity in a step's loss or gradient is caught in that step: the fit stops
//! with an error naming the step and the last good checkpoint, before the weights change —
//! or, when the config says so, the batch is skipped and training goes on.

use std::cell::Cell;
use std::path::Path;

use kd_core::{DistillLoss, Distiller, LossParts};
use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::{Model, ModelConfig, StudentConfig};
use kd_train::callback::{EarlyStoppingConfig, ReduceLrConfig};
use kd_train::{fit_with, Checkpoints, FitHooks, Objective, OnNonFinite, TrainConfig, TrainError};
use ndarray::Array4;
use tch::{Device, Kind, Tensor};

/// Cross-entropy, except at call `bad_call` (counting from 1), where it is broken.
#[derive(Debug)]
struct BreaksAt {
    bad_call: usize,
    calls: Cell<usize>,
    /// A NaN loss, or a finite loss whose gradient is NaN.
    nan_loss: bool,
}

impl DistillLoss for BreaksAt {
    fn loss(&self, student: &Tensor, _teacher: &Tensor, labels: &Tensor) -> LossParts {
        self.calls.set(self.calls.get() + 1);
        let mut total = student.cross_entropy_for_logits(labels);
        if self.calls.get() == self.bad_call {
            total = if self.nan_loss {
                total * f64::NAN
            } else {
                // sqrt(|x - x|) is 0, but its derivative at 0 is inf * 0 = NaN.
                total + (student - student.detach()).abs().sqrt().sum(Kind::Float)
            };
        }
        LossParts {
            total,
            parts: Vec::new(),
        }
    }
}

fn data(n: usize) -> ImageDataset {
    let px: Vec<u8> = (0..n * 64).map(|i| ((i * 37) % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
    let images = Array4::from_shape_vec((n, 1, 8, 8), px).unwrap();
    ImageDataset::new(images, labels, 4, Path::new("synthetic")).unwrap()
}

fn student() -> Model {
    let config = ModelConfig::Student(StudentConfig {
        blocks: 2,
        convs_per_block: 1,
        width: 4,
    });
    Model::new(&config, 1, 8, 4, Device::Cpu).unwrap()
}

fn config(on_nonfinite: OnNonFinite) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 8,
        on_nonfinite,
        early_stopping: EarlyStoppingConfig {
            enabled: false,
            ..Default::default()
        },
        reduce_lr: ReduceLrConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Fits on 32 images (4 batches per epoch) with `loss`; returns the outcome and the model.
fn fit(
    loss: &BreaksAt,
    policy: OnNonFinite,
    dir: &Path,
) -> (kd_train::Result<kd_train::FitOutcome>, Model) {
    let (train, val) = (data(32), data(8));
    let tf = TransformConfig::default();
    let train = BatchLoader::new(&train, 8, tf.clone(), Device::Cpu).shuffled(1);
    let val = BatchLoader::new(&val, 8, tf, Device::Cpu);
    let model = student();
    let teacher = student();
    let objective = Objective::Distill(Distiller::live(&teacher, loss));
    let ck = Checkpoints::new(dir, "fp");
    let outcome = fit_with(
        &model,
        &train,
        &val,
        &objective,
        &config(policy),
        "student",
        FitHooks {
            progress: None,
            checkpoints: Some(&ck),
            ..Default::default()
        },
    );
    (outcome, model)
}

fn weights(model: &Model) -> Vec<(String, Tensor)> {
    let mut named: Vec<_> = model.var_store().variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(n, t)| (n, t.copy())).collect()
}

#[test]
fn a_nan_loss_stops_the_fit_in_its_step_naming_the_last_good_checkpoint() {
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().unwrap();
    // Step 6 is batch 2 of epoch 2 (4 batches per epoch); the training forward passes are
    // calls 1-4 and 6-9 of the loss, validation is call 5.
    let loss = BreaksAt {
        bad_call: 7,
        calls: Cell::new(0),
        nan_loss: true,
    };
    let (outcome, model) = fit(&loss, OnNonFinite::Stop, dir.path());
    let err = outcome.unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFinite {
                step: 6,
                epoch: 2,
                batch: 2,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("non-finite loss (NaN) at step 6"),
        "{message}"
    );
    assert!(
        message.contains("last.safetensors (after epoch 1)"),
        "{message}"
    );
    // The loss was the last thing computed: no step followed it.
    assert_eq!(loss.calls.get(), 7);
    for (name, w) in weights(&model) {
        assert!(
            w.isfinite().all().int64_value(&[]) == 1,
            "{name} is not finite"
        );
    }
}

#[test]
fn a_nan_gradient_under_a_finite_loss_is_caught_and_named() {
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().unwrap();
    let loss = BreaksAt {
        bad_call: 2,
        calls: Cell::new(0),
        nan_loss: false,
    };
    let (outcome, _) = fit(&loss, OnNonFinite::Stop, dir.path());
    let message = outcome.unwrap_err().to_string();
    assert!(message.contains("non-finite gradient of"), "{message}");
    assert!(
        message.contains("at step 2 (epoch 1, batch 2)"),
        "{message}"
    );
    assert!(message.contains("no checkpoint yet"), "{message}");
}

#[test]
fn skip_batch_leaves_the_weights_and_goes_on() {
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().unwrap();
    let loss = BreaksAt {
        bad_call: 3,
        calls: Cell::new(0),
        nan_loss: false,
    };
    let (outcome, model) = fit(&loss, OnNonFinite::SkipBatch, dir.path());
    let outcome = outcome.unwrap();
    assert_eq!(outcome.history.epochs.len(), 3);
    let skipped: Vec<_> = outcome
        .events
        .iter()
        .filter(|e| e.action == "skipped_nonfinite")
        .collect();
    assert_eq!(skipped.len(), 1, "{:?}", outcome.events);
    assert_eq!(skipped[0].epoch, 1);
    for (name, w) in weights(&model) {
        assert!(
            w.isfinite().all().int64_value(&[]) == 1,
            "{name} is not finite"
        );
    }
}

//! The `Learner` builder: a user's `tch::nn` teacher and student (no kd architecture) on a
//! batch source of the caller's own, a registered metric that ReduceLROnPlateau monitors and
//! that checkpoints carry, and metric names that are refused.

use std::path::Path;

use kd_core::{Distiller, HintonKdConfig};
use kd_data::{Batch, BatchLoader, TransformConfig};
use kd_models::network::TchNetwork;
use kd_train::callback::{Monitor, ReduceLrConfig};
use kd_train::metric::{metric_fn, TopK};
use kd_train::{Checkpoints, FitOutcome, Learner, TrainConfig, TrainError};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// A one-layer network over 8x8 single-channel images, seeded.
fn linear(seed: i64) -> TchNetwork<nn::FuncT<'static>> {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let fc = nn::linear(vs.root() / "fc", 64, 4, Default::default());
    TchNetwork::new(vs, nn::func_t(move |x, _| fc.forward(&x.flatten(1, -1))))
}

/// The quadrants task as batches held in memory (a source that is not a kd-data loader).
fn batches(n: usize, salt: usize) -> Vec<Batch> {
    let data = crate::common::quadrants(n, salt, 120);
    let loader = BatchLoader::new(&data, 32, TransformConfig::default(), Device::Cpu);
    let mut held = Vec::new();
    kd_train::BatchSource::for_each_batch(&loader, 0, &mut |b| {
        held.push(b);
        Ok(())
    })
    .unwrap();
    held
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 32,
        lr: 0.05,
        reduce_lr: ReduceLrConfig {
            enabled: true,
            monitor: Monitor::new("val_margin"),
            patience: 0,
            min_delta: 1e9,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The mean gap between the label's logit and the largest other one.
fn margin(logits: &Tensor, labels: &Tensor) -> Tensor {
    let own = logits.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
    let others = logits.scatter_value(1, &labels.unsqueeze(1), f64::NEG_INFINITY);
    (own - others.amax(1, false)).sum(Kind::Float)
}

fn distil(dir: &Path, resume: bool) -> Result<FitOutcome, TrainError> {
    let teacher = linear(1);
    let student = linear(2);
    let loss = HintonKdConfig {
        alpha: 0.5,
        temperature: 2.0,
    }
    .build("distill")
    .unwrap();
    let checkpoints = Checkpoints::new(dir.to_path_buf(), "learner-test").resuming(resume);
    let config = config();
    Learner::new(&student, &config)
        .distill(Distiller::live(&teacher, &loss))
        .phase("student")
        .metric(metric_fn("val_margin", margin))
        .metric(TopK::new(2))
        .checkpoints(&checkpoints)
        .fit(&batches(256, 0), &batches(96, 1))
}

#[test]
fn a_registered_metric_is_recorded_monitored_and_checkpointed() {
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().unwrap();
    let outcome = distil(dir.path(), false).unwrap();
    let epochs = &outcome.history.epochs;
    assert_eq!(epochs.len(), 4);
    for m in epochs {
        let top2 = m.value("val_top2_accuracy").unwrap();
        assert!(top2 >= m.val_accuracy && top2 <= 1.0, "{m:?}");
        assert!(m.value("val_margin").unwrap().is_finite());
    }
    // ReduceLROnPlateau watched val_margin (minimized: its name has no "acc"), which after
    // the first epoch cannot improve by 1e9: with patience 0, epochs 2 to 4 each cut.
    let cuts = outcome.events.iter().filter(|e| e.action == "reduce_lr");
    assert_eq!(cuts.count(), 3, "{:?}", outcome.events);
    // The complete fit's checkpoint holds the metrics: resuming it loads them back.
    let again = distil(dir.path(), true).unwrap();
    assert_eq!(again.history, outcome.history);
}

#[test]
fn a_metric_named_like_a_built_in_or_twice_is_refused_naming_it() {
    let _rng = crate::common::global_rng();
    let student = linear(3);
    let config = config();
    let (train, val) = (batches(64, 0), batches(32, 1));
    let shadowing = Learner::new(&student, &config)
        .metric(metric_fn("val_loss", margin))
        .fit(&train, &val);
    let message = shadowing.unwrap_err().to_string();
    assert!(message.contains("metric \"val_loss\""), "{message}");
    let twice = Learner::new(&student, &config)
        .metric(TopK::new(2))
        .metric(TopK::new(2))
        .fit(&train, &val);
    let message = twice.unwrap_err().to_string();
    assert!(message.contains("val_top2_accuracy"), "{message}");
}

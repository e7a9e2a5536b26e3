//! The training loop on a small synthetic task: it learns, cached logits line up with their
//! images, and restoring the best weights really restores them.

use kd_core::Distiller;
use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::{Model, ModelConfig, StudentConfig};
use kd_train::callback::EarlyStoppingConfig;
use kd_train::{evaluate, fit, predict_logits, Objective, Split, TrainConfig};
use tch::Device;

/// The quadrants task of `common`, bright quadrants from 150.
fn quadrants(n: usize, salt: usize) -> ImageDataset {
    crate::common::quadrants(n, salt, 150)
}

fn small_student() -> ModelConfig {
    ModelConfig::Student(StudentConfig {
        blocks: 2,
        convs_per_block: 1,
        width: 8,
    })
}

#[test]
fn cached_logits_follow_dataset_order_whatever_the_loader_order() {
    let _rng = crate::common::global_rng();
    tch::manual_seed(11);
    let data = quadrants(37, 0);
    let model = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
    let tf = TransformConfig::default();
    let shuffled = BatchLoader::new(&data, 5, tf.clone(), Device::Cpu).shuffled(3);
    let cached = predict_logits(&model, &shuffled).unwrap();
    let all = BatchLoader::new(&data, 37, tf, Device::Cpu)
        .epoch(0)
        .next()
        .unwrap();
    let direct = tch::no_grad(|| model.forward_t(&all.images, false));
    assert_eq!(cached.size(), vec![37, 4]);
    assert!(cached.allclose(&direct, 1e-5, 1e-6, false));
}

#[test]
fn training_learns_the_task_and_restores_the_best_epoch_at_the_end() {
    let _rng = crate::common::global_rng();
    tch::manual_seed(5);
    let (train, val) = (quadrants(256, 0), quadrants(64, 1));
    let tf = TransformConfig::default();
    let train_loader = BatchLoader::new(&train, 32, tf.clone(), Device::Cpu).shuffled(1);
    let val_loader = BatchLoader::new(&val, 64, tf, Device::Cpu);
    let model = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
    let config = TrainConfig {
        epochs: 6,
        batch_size: 32,
        lr: 0.01,
        early_stopping: EarlyStoppingConfig {
            patience: 100,
            restore_at_end: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let outcome = fit(
        &model,
        &train_loader,
        &val_loader,
        &Objective::CrossEntropy,
        &config,
        "test",
    )
    .unwrap();
    let h = &outcome.history.epochs;
    assert_eq!(h.len(), 6);
    assert_eq!(outcome.stopped_epoch, None);
    assert!(h[5].loss < h[0].loss, "training loss did not fall: {h:?}");
    let best = h.iter().map(|m| m.val_loss).fold(f64::INFINITY, f64::min);
    let now = evaluate(
        &model,
        &val_loader,
        &Objective::CrossEntropy,
        Split::Validation,
    )
    .unwrap();
    assert!(now.accuracy > 0.8, "did not learn: {now:?}");
    // The weights in the model are the best epoch's, not the last one's.
    assert!(
        (now.loss - best).abs() < 1e-5,
        "restored loss {} vs best {best}",
        now.loss
    );
}

#[test]
fn invalid_training_config_is_refused_before_training() {
    let _rng = crate::common::global_rng();
    let data = quadrants(8, 0);
    let loader = BatchLoader::new(&data, 4, TransformConfig::default(), Device::Cpu);
    let model = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
    let config = TrainConfig {
        lr: 0.0,
        ..Default::default()
    };
    let err = fit(
        &model,
        &loader,
        &loader,
        &Objective::CrossEntropy,
        &config,
        "student.train",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("student.train.lr"), "{err}");
}

#[test]
fn cached_teacher_logits_give_the_losses_of_a_live_teacher() {
    let _rng = crate::common::global_rng();
    tch::manual_seed(12);
    let data = quadrants(53, 1);
    let teacher = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
    let tf = TransformConfig::default();
    let loss = kd_core::DkdConfig::default().build("distill").unwrap();
    let f32_cache = kd_train::cache_teacher_logits(
        &teacher,
        &BatchLoader::new(&data, 16, tf.clone(), Device::Cpu),
        kd_core::CacheDtype::F32,
    )
    .unwrap();
    let f16_cache = kd_train::cache_teacher_logits(
        &teacher,
        &BatchLoader::new(&data, 16, tf.clone(), Device::Cpu),
        kd_core::CacheDtype::F16,
    )
    .unwrap();
    assert_eq!(f16_cache.logits().kind(), tch::Kind::Half);
    let live = Objective::Distill(Distiller::live(&teacher, &loss));
    let cached = Objective::Distill(Distiller::cached(&f32_cache, &f32_cache, &loss));
    let half = Objective::Distill(Distiller::cached(&f16_cache, &f16_cache, &loss));
    let student = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
    // Batches of another size, in shuffled order, over two epochs.
    let loader = BatchLoader::new(&data, 7, tf, Device::Cpu).shuffled(5);
    for epoch in 1..=2 {
        for batch in loader.epoch(epoch) {
            let value = |o: &Objective| {
                let (_, loss) = o.forward_loss(&student, &batch, Split::Train, false);
                loss.total.double_value(&[])
            };
            let (l, c, h) = (value(&live), value(&cached), value(&half));
            assert!(
                (l - c).abs() <= 1e-6 + 1e-5 * l.abs(),
                "live {l} vs cached {c}"
            );
            assert!(
                (l - h).abs() <= 1e-4 + 1e-2 * l.abs(),
                "live {l} vs f16 cache {h}"
            );
        }
    }
}

/// Mixed precision learns the task as float32 does: bfloat16 directly, float16 through the
/// loss scaler (which starts at 2^16 and must not skip every step).
#[test]
fn mixed_precision_training_learns_the_task() {
    let _rng = crate::common::global_rng();
    use kd_models::Precision;
    let (train, val) = (quadrants(256, 0), quadrants(64, 1));
    let tf = TransformConfig::default();
    let train_loader = BatchLoader::new(&train, 32, tf.clone(), Device::Cpu).shuffled(1);
    let val_loader = BatchLoader::new(&val, 64, tf, Device::Cpu);
    let mut config = TrainConfig {
        epochs: 6,
        batch_size: 32,
        lr: 0.01,
        ..Default::default()
    };
    config.early_stopping.enabled = false;
    for precision in [Precision::Bf16, Precision::F16] {
        tch::manual_seed(5);
        let mut model = Model::new(&small_student(), 1, 8, 4, Device::Cpu).unwrap();
        model.set_precision(precision).unwrap();
        let outcome = fit(
            &model,
            &train_loader,
            &val_loader,
            &Objective::CrossEntropy,
            &config,
            "test",
        )
        .unwrap();
        let h = &outcome.history.epochs;
        assert!(
            h[5].loss < h[0].loss,
            "{precision}: loss did not fall: {h:?}"
        );
        let now = evaluate(
            &model,
            &val_loader,
            &Objective::CrossEntropy,
            Split::Validation,
        )
        .unwrap();
        assert!(now.accuracy > 0.8, "{precision} did not learn: {now:?}");
        let w = &model.var_store().variables()["features.0.weight"];
        assert_eq!(w.kind(), tch::Kind::Float, "parameters stay float32");
    }
}

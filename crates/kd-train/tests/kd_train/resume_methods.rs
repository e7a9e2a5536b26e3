//! Every distillation method resumes bit for bit: for each loss kd has — the logit losses
//! against a live teacher, the feature losses (FitNets' regressor, CRD's heads, memory banks
//! and negatives included, and SimKD's student with its projector and the teacher's head)
//! between layers of other channel counts and sizes — a distilled
//! fit cut short mid-epoch and resumed from its
//! checkpoint into a fresh student ends with the weights and history of the fit left alone
//! (in the same process: one machine, one thread count).

use std::panic::{catch_unwind, AssertUnwindSafe};

use kd_core::{Distiller, LossConfig};
use kd_data::{BatchLoader, TransformConfig};
use kd_models::{Model, ModelConfig, SimKdStudentConfig};
use kd_train::{fit_with, Checkpoints, FitHooks, FitOutcome, Objective, TrainConfig};
use tch::Device;

use crate::resume::{assert_same_weights, cnn, model, quadrants, results, CrashAt};

/// Every loss, as a config writes it; the feature losses hint from the teacher's first
/// stage (8 channels, 8x8) to the student's second (16 channels, 4x4).
const LOSSES: [&str; 11] = [
    r#"{"loss": "keras-kd"}"#,
    r#"{"loss": "hinton"}"#,
    r#"{"loss": "dkd", "warmup_epochs": 2}"#,
    r#"{"loss": "lskd"}"#,
    r#"{"loss": "dist"}"#,
    r#"{"loss": "mlkd", "standardize": true}"#,
    r#"{"loss": "fitnets", "student_layer": "features.6", "teacher_layer": "features.2"}"#,
    r#"{"loss": "at", "student_layer": "features.6", "teacher_layer": "features.2"}"#,
    r#"{"loss": "rkd", "student_layer": "features.6", "teacher_layer": "features.2"}"#,
    r#"{"loss": "crd", "student_layer": "features.6", "teacher_layer": "features.2", "negatives": 16, "feat_dim": 8}"#,
    r#"{"loss": "simkd", "student_layer": "features.2", "teacher_layer": "features.6"}"#,
];

/// The student `loss` trains, initialized from `seed`: the CNN, or for SimKD the CNN's
/// first stage, a projector and `teacher`'s head.
fn student(loss: &LossConfig, seed: i64, teacher: &Model) -> Model {
    let LossConfig::Simkd(simkd) = loss else {
        return model(seed);
    };
    tch::manual_seed(seed);
    let config = ModelConfig::SimKd(SimKdStudentConfig {
        student: Box::new(cnn()),
        student_layer: simkd.student_layer.clone(),
        teacher: Box::new(cnn()),
        teacher_layer: simkd.teacher_layer.clone(),
        factor: simkd.factor,
    });
    let student = Model::new(&config, 1, 8, 4, Device::Cpu).unwrap();
    student.adopt_teacher_head(teacher).unwrap();
    student
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 16,
        lr: 0.01,
        ..Default::default()
    }
}

/// Distils `student` from `teacher` with `loss`, checkpointing into `checkpoints`.
fn distil(
    loss: &LossConfig,
    teacher: &Model,
    student: &Model,
    checkpoints: &Checkpoints,
    progress: Option<&mut CrashAt>,
) -> kd_train::Result<FitOutcome> {
    let (train, val) = (quadrants(96, 0), quadrants(32, 1));
    let tf = TransformConfig::default();
    let train = BatchLoader::new(&train, 16, tf.clone(), Device::Cpu).shuffled(5);
    let val = BatchLoader::new(&val, 32, tf, Device::Cpu);
    let (logit, feature);
    let distiller = if loss.is_feature() {
        let path = student.var_store().root() / "aux" / "hint";
        feature = loss.build_feature("distill", &path, [16, 8], 96).unwrap();
        Distiller::features(teacher, feature.as_ref())
    } else {
        logit = loss.build("distill").unwrap();
        Distiller::live(teacher, logit.as_ref())
    };
    let hooks = FitHooks {
        progress: progress.map(|p| p as &mut dyn kd_train::Progress),
        checkpoints: Some(checkpoints),
        ..Default::default()
    };
    let objective = Objective::Distill(distiller);
    fit_with(
        student,
        &train,
        &val,
        &objective,
        &config(),
        "distilled",
        hooks,
    )
}

#[test]
fn every_method_resumes_to_the_uninterrupted_result() {
    let _rng = crate::common::global_rng();
    let mut teacher = model(3);
    teacher.freeze();
    let dir = tempfile::tempdir().unwrap();
    for (n, json) in LOSSES.iter().enumerate() {
        let loss: LossConfig = serde_json::from_str(json).unwrap();
        let whole = student(&loss, 21, &teacher);
        let whole_ck = Checkpoints::new(dir.path().join(format!("whole-{n}")), "fp");
        let expected = distil(&loss, &teacher, &whole, &whole_ck, None).unwrap();

        let cut_ck = Checkpoints::new(dir.path().join(format!("cut-{n}")), "fp");
        let cut = student(&loss, 21, &teacher);
        let mut crash = CrashAt {
            epoch: 2,
            batch: 3,
            current: 0,
        };
        let crashed = catch_unwind(AssertUnwindSafe(|| {
            distil(&loss, &teacher, &cut, &cut_ck, Some(&mut crash))
        }));
        assert!(crashed.is_err(), "{json}: the crash happened");

        let resumed_model = student(&loss, 99, &teacher);
        let resumed = distil(
            &loss,
            &teacher,
            &resumed_model,
            &cut_ck.resuming(true),
            None,
        )
        .unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_same_weights(&whole, &resumed_model);
        assert_eq!(results(&expected), results(&resumed), "{json}");
    }
}

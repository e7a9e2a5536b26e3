//! SimKD students (Chen et al., CVPR 2022): the composed network against PyTorch 2.11 in
//! float64 — the student's layers, the student's 8x8 map pooled to the teacher's 4x4, the
//! paper's projector (`SimKD.transfer`), the teacher's head after its hinted layer — in
//! inference and in training mode (where the teacher's head must stay in inference mode),
//! and the gradient reaching the student's first convolution. Every tensor is set to
//! `pattern(shape, 0.07 (k + 1), 0.1 k)` in name order (running variances `1 + p^2`). The
//! Python:
//!
//! ```python
//! import torch, torch.nn as nn, torch.nn.functional as F
//! torch.set_default_dtype(torch.float64)
//! def pattern(shape, a, b):
//!     n = 1
//!     for d in shape: n *= d
//!     return torch.sin(torch.arange(n, dtype=torch.float64) * a + b).reshape(shape)
//! class SimKdStudent(nn.Module):   # kd's names: the student's features up to features.1, the
//!     def __init__(self):          # projector (SimKD's `transfer`), the teacher's head
//!         super().__init__()
//!         self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
//!         self.projector = nn.Sequential(
//!             nn.Conv2d(4, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
//!             nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
//!             nn.Conv2d(3, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
//!         self.teacher = nn.Module()
//!         self.teacher.classifier = nn.Sequential(nn.Linear(24, 5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 3))
//!     def forward(self, x):
//!         f = F.adaptive_avg_pool2d(self.features(x), (4, 4))   # the student's 8x8 to the teacher's 4x4
//!         p = self.projector(f)
//!         return self.teacher.classifier(F.max_pool2d(p, 2).flatten(1)), p   # teacher's features.7, flatten, classifier
//! m = SimKdStudent()
//! state = {k: v for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}
//! for k, name in enumerate(sorted(state)):
//!     t = pattern(state[name].shape, 0.07 * (k + 1), 0.1 * k)
//!     state[name].copy_(1 + t * t if name.endswith('running_var') else t)
//! x = pattern((2, 1, 8, 8), 0.3, 0.2)
//! m.eval(); logits, _ = m(x)
//! print('eval', logits.flatten().tolist())
//! m.projector.train()          # the teacher's head stays in inference mode
//! logits, p = m(x)
//! print('train', logits.flatten().tolist())
//! target = pattern((2, 6, 4, 4), 0.11, 0.4).abs()
//! F.mse_loss(p, target).backward()
//! g = m.features[0].weight.grad
//! print('grad', (g * pattern(g.shape, 1.3, 0.5)).sum().item(), g.norm().item())
//! ```

use kd_models::simkd::PROJECTOR_LAYER;
use kd_models::{CnnConfig, Model, ModelConfig, SimKdStudentConfig, StudentConfig, VggConfig};
use tch::{Device, Kind, Tensor};

const EVAL: [f64; 6] = [
    1.6153231085858302,
    -0.10277845828837007,
    -1.6158571695363513,
    1.2997679844523058,
    -0.12870461088947258,
    -1.3253423501965806,
];
const TRAIN: [f64; 6] = [
    1.4922286092102763,
    -0.11289195837470214,
    -1.5025306109960543,
    1.609833908081753,
    -0.10322945349980112,
    -1.6108035545866952,
];
const GRAD: (f64, f64) = (0.0029961290370477435, 0.14194468078938474);

fn pattern(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i as f64 * a + b).sin() as f32).collect();
    Tensor::from_slice(&v).reshape(shape)
}

/// A 2-block student hinted after its first conv (features.1: 4 x 8 x 8) on a 2-stage CNN
/// teacher hinted after its second stage's ReLU (features.6: 6 x 4 x 4).
fn config(student_layer: &str) -> ModelConfig {
    config_at(student_layer, "features.6")
}

fn config_at(student_layer: &str, teacher_layer: &str) -> ModelConfig {
    ModelConfig::SimKd(SimKdStudentConfig {
        student: Box::new(ModelConfig::Student(StudentConfig {
            blocks: 2,
            convs_per_block: 1,
            width: 4,
        })),
        student_layer: student_layer.into(),
        teacher: Box::new(ModelConfig::Cnn(CnnConfig {
            channels: vec![4, 6],
            convs_per_stage: 1,
            hidden: 5,
            dropout: 0.3,
        })),
        teacher_layer: teacher_layer.into(),
        factor: 2,
    })
}

/// The composed student with every variable set as the Python sets it.
fn patterned() -> Model {
    let model = Model::new(&config("features.1"), 1, 8, 3, Device::Cpu).unwrap();
    let mut vars: Vec<_> = model.var_store().variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (k, (name, mut var)) in vars.into_iter().enumerate() {
            let t = pattern(&var.size(), 0.07 * (k + 1) as f64, 0.1 * k as f64);
            let t = if name.ends_with("running_var") {
                &t * &t + 1.0
            } else {
                t
            };
            var.copy_(&t);
        }
    });
    model
}

fn assert_close(got: &Tensor, want: &[f64], what: &str) {
    let got: Vec<f64> = Vec::try_from(got.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: {got:?} vs PyTorch {want:?}"
        );
    }
}

#[test]
fn a_simkd_student_computes_what_pytorch_computes_with_the_teachers_head_frozen() {
    let model = patterned();
    let x = pattern(&[2, 1, 8, 8], 0.3, 0.2);
    assert_close(&model.forward_t(&x, false), &EVAL, "inference");
    let (logits, features) = model
        .forward_features(&x, true, &[PROJECTOR_LAYER])
        .unwrap();
    assert_close(&logits, &TRAIN, "training mode");
    let target = pattern(&[2, 6, 4, 4], 0.11, 0.4).abs();
    features[0]
        .mse_loss(&target, tch::Reduction::Mean)
        .backward();
    let vars = model.var_store().variables();
    let grad = vars["features.0.weight"].grad().to_kind(Kind::Double);
    let dot = (&grad * pattern(&grad.size(), 1.3, 0.5).to_kind(Kind::Double)).sum(Kind::Double);
    assert_close(&dot, &[GRAD.0], "gradient . v");
    assert_close(&grad.norm(), &[GRAD.1], "|gradient|");
    for (name, var) in &vars {
        assert_eq!(
            var.requires_grad(),
            !name.starts_with("teacher.") && !name.contains("running"),
            "{name}"
        );
    }
}

#[test]
fn a_simkd_student_is_the_students_layers_a_projector_and_the_teachers_head() {
    let model = Model::new(&config("features.1"), 1, 8, 3, Device::Cpu).unwrap();
    let mut names: Vec<String> = model.var_store().variables().into_keys().collect();
    names.sort();
    let bn = |i: usize| {
        ["bias", "running_mean", "running_var", "weight"].map(|v| format!("projector.{i}.{v}"))
    };
    let mut want = vec!["features.0.bias".to_string(), "features.0.weight".into()];
    want.extend(["projector.0.weight".to_string()].into_iter().chain(bn(1)));
    want.extend(["projector.3.weight".to_string()].into_iter().chain(bn(4)));
    want.extend(["projector.6.weight".to_string()].into_iter().chain(bn(7)));
    want.extend(
        ["0.bias", "0.weight", "3.bias", "3.weight"].map(|v| format!("teacher.classifier.{v}")),
    );
    assert_eq!(names, want);
    // student conv 4*9+4, projector 4*3 + 3*3*9 + 3*6 (+ BN 2*(3+3+6)), head 24*5+5 + 5*3+3
    assert_eq!(
        model.trainable_parameters(),
        40 + 12 + 81 + 18 + 24 + 125 + 18
    );
}

#[test]
fn a_student_layer_smaller_than_the_teachers_or_missing_is_a_config_error() {
    let err = Model::new(&config("features.5"), 1, 8, 3, Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("distill.student_layer") && err.to_string().contains("2x2"),
        "{err}"
    );
    let err = Model::new(&config("features.9"), 1, 8, 3, Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("features.9") && err.to_string().contains("features.5"),
        "{err}"
    );
}

#[test]
fn a_simkd_student_takes_its_head_from_the_trained_teacher_and_saves_it() {
    let model = Model::new(&config("features.1"), 1, 8, 3, Device::Cpu).unwrap();
    let ModelConfig::SimKd(c) = config("features.1") else {
        unreachable!()
    };
    let teacher = Model::new(&c.teacher, 1, 8, 3, Device::Cpu).unwrap();
    model.adopt_teacher_head(&teacher).unwrap();
    let vars = teacher.var_store().variables();
    let head = model.var_store().variables();
    assert!(head["teacher.classifier.3.weight"].equal(&vars["classifier.3.weight"]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("simkd.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::new(&config("features.1"), 1, 8, 3, Device::Cpu).unwrap();
    loaded.load(&path).unwrap();
    let x = pattern(&[2, 1, 8, 8], 0.3, 0.2);
    assert!(loaded
        .forward_t(&x, false)
        .equal(&model.forward_t(&x, false)));
    let other = Model::new(&c.student, 1, 8, 3, Device::Cpu).unwrap();
    let err = model.adopt_teacher_head(&other).unwrap_err();
    assert!(err.to_string().contains("SimKD reuses its head"), "{err}");
}

#[test]
fn a_frozen_head_keeps_its_batch_norm_statistics_in_training_mode() {
    // The head from the teacher's second batch norm on: features.5 (BN), 6, 7, classifier.
    let model = Model::new(&config_at("features.1", "features.4"), 1, 8, 3, Device::Cpu).unwrap();
    let vars = model.var_store().variables();
    let stats = [
        "teacher.features.5.running_mean",
        "projector.1.running_mean",
    ];
    let before = stats.map(|name| vars[name].copy());
    let x = pattern(&[4, 1, 8, 8], 0.3, 0.2);
    let _ = model.forward_t(&x, true);
    assert!(
        vars[stats[0]].equal(&before[0]),
        "the head's statistics moved"
    );
    assert!(!vars[stats[1]].equal(&before[1]), "the projector's did not");
}

#[test]
fn a_simkd_config_without_pretrained_weights_has_none_in_its_parts() {
    let vgg = |pretrained: Option<&str>| {
        Box::new(ModelConfig::Vgg(VggConfig {
            depth: 11,
            pretrained: pretrained.map(Into::into),
        }))
    };
    let ModelConfig::SimKd(mut c) = config("features.1") else {
        unreachable!()
    };
    (c.student, c.teacher) = (
        vgg(Some("student.safetensors")),
        vgg(Some("teacher.safetensors")),
    );
    let stripped = ModelConfig::SimKd(c.clone()).without_pretrained();
    (c.student, c.teacher) = (vgg(None), vgg(None));
    assert_eq!(stripped, ModelConfig::SimKd(c));
}

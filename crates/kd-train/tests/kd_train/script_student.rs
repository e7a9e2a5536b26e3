//! A student saved by PyTorch (`torch.jit.script` + `torch.jit.save`: conv, batch norm,
//! dropout, linear) trained by kd's loop as a `ScriptNetwork`: its variables are the
//! module's `state_dict` (buffers included), its eval logits are PyTorch's, distillation from
//! a kd teacher teaches it, a fit cut short resumes bit for bit (one machine, same threads),
//! and the module it saves is the trained one when PyTorch loads it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kd_core::{Distiller, HintonKdConfig};
use kd_data::{BatchLoader, TransformConfig};
use kd_models::{Model, ModelConfig, Network, ScriptNetwork, StudentConfig};
use kd_train::{Checkpoints, FitOutcome, Learner, Progress, TrainConfig};
use tch::{Device, Kind, Tensor};

/// Writes the PyTorch module to `path` and returns its eval logits for [`probe`].
const MAKE_MODULE: &str = r#"
import json, sys, torch, torch.nn as nn
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(24, 4)
    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        return self.fc(self.drop(x))
m = torch.jit.script(Net().eval())
m.save(sys.argv[1])
print(json.dumps(m(torch.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)).tolist()))
"#;

/// PyTorch's eval logits for [`probe`] from the module saved at `argv[1]`.
const RUN_MODULE: &str = r#"
import json, sys, torch
m = torch.jit.load(sys.argv[1]).eval()
print(json.dumps(m(torch.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)).tolist()))
"#;

fn probe() -> Tensor {
    Tensor::linspace(0.0, 1.0, 128, (Kind::Float, Device::Cpu)).reshape([2, 1, 8, 8])
}

/// Runs `script` (from a file: `torch.jit.script` reads the source) on `module`.
fn python_logits(python: &Path, script: &str, module: &Path) -> Tensor {
    let file = module.with_extension("py");
    std::fs::write(&file, script).unwrap();
    let out = std::process::Command::new(python)
        .arg(&file)
        .arg(module)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    let flat: Vec<f32> = rows.concat();
    Tensor::from_slice(&flat).reshape([2, 4])
}

/// Panics at batch 3 of epoch 2, as a killed process stops mid-epoch.
struct CrashInEpochTwo(usize);

impl Progress for CrashInEpochTwo {
    fn epoch_start(&mut self, _phase: &str, epoch: usize, _epochs: usize, _batches: usize) {
        self.0 = epoch;
    }

    fn batch(&mut self, done: usize, _running: &dyn Fn() -> (f64, f64)) {
        assert!(!(self.0 == 2 && done == 3), "simulated crash");
    }
}

fn teacher() -> Model {
    tch::manual_seed(4);
    let config = ModelConfig::Student(StudentConfig {
        blocks: 1,
        convs_per_block: 1,
        width: 8,
    });
    Model::new(&config, 1, 8, 4, Device::Cpu).unwrap()
}

/// Distils `student` from `teacher` on the quadrants task for 3 epochs, dropout drawing from
/// the global generator seeded here (a resumed fit takes its state from the checkpoint).
fn distil(
    student: &ScriptNetwork,
    teacher: &Model,
    checkpoints: &Checkpoints,
    crash: Option<&mut CrashInEpochTwo>,
) -> kd_train::Result<FitOutcome> {
    let (train, val) = (
        crate::common::quadrants(192, 0, 120),
        crate::common::quadrants(64, 1, 120),
    );
    let tf = TransformConfig::default();
    let train = BatchLoader::new(&train, 16, tf.clone(), Device::Cpu).shuffled(2);
    let val = BatchLoader::new(&val, 64, tf, Device::Cpu);
    let loss = HintonKdConfig {
        alpha: 0.5,
        temperature: 2.0,
    }
    .build("distill")
    .unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        lr: 0.02,
        ..Default::default()
    };
    tch::manual_seed(11);
    let mut learner = Learner::new(student, &config)
        .distill(Distiller::live(teacher, &loss))
        .checkpoints(checkpoints);
    if let Some(crash) = crash {
        learner = learner.progress(crash);
    }
    learner.fit(&train, &val)
}

fn variables(net: &dyn Network) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = net.var_store().variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[test]
fn a_torchscript_student_trains_resumes_and_saves_as_torchscript() {
    let Some(python) = kd_testkit::require(
        "a_torchscript_student_trains_resumes_and_saves_as_torchscript",
        kd_testkit::venv_python(env!("CARGO_MANIFEST_DIR")),
        "no venv with PyTorch (run `cargo xtask setup`)",
    ) else {
        return;
    };
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("student.pt");
    let expected = python_logits(&python, MAKE_MODULE, &module);
    let student = ScriptNetwork::load(&module, Device::Cpu).unwrap();
    let names: Vec<String> = variables(&student).into_iter().map(|(n, _)| n).collect();
    let state_dict = [
        "bn.bias",
        "bn.num_batches_tracked",
        "bn.running_mean",
        "bn.running_var",
        "bn.weight",
        "conv.bias",
        "conv.weight",
        "fc.bias",
        "fc.weight",
    ];
    assert_eq!(names, state_dict);
    let logits = student.forward_t(&probe(), false);
    assert!(
        logits.allclose(&expected, 1e-5, 1e-5, false),
        "{logits} vs {expected}"
    );

    let teacher = teacher();
    let whole_ck = Checkpoints::new(dir.path().join("whole"), "script");
    let whole = distil(&student, &teacher, &whole_ck, None).unwrap();
    let val_accuracy = whole.history.last().unwrap().val_accuracy;
    assert!(
        val_accuracy > 0.5,
        "the student learns (chance 0.25): {val_accuracy}"
    );
    let running_mean = &variables(&student)[2].1;
    assert!(running_mean.abs().sum(Kind::Float).double_value(&[]) > 0.0);

    cut_and_resume(&module, &teacher, dir.path(), &student, &whole);

    let trained = dir.path().join("trained.pt");
    student.save_module(&trained).unwrap();
    let reloaded = python_logits(&python, RUN_MODULE, &trained);
    let kd_logits = student.forward_t(&probe(), false);
    assert!(reloaded.allclose(&kd_logits, 1e-5, 1e-5, false));
    assert!(
        !reloaded.allclose(&expected, 1e-3, 1e-3, false),
        "the saved module is trained"
    );
}

/// The fit of `whole` cut short in its second epoch and resumed into a freshly loaded module
/// ends with the same variables, buffers included, and the same history.
fn cut_and_resume(
    module: &Path,
    teacher: &Model,
    dir: &Path,
    whole: &ScriptNetwork,
    expected: &FitOutcome,
) {
    let ck: PathBuf = dir.join("cut");
    let cut = ScriptNetwork::load(module, Device::Cpu).unwrap();
    let crashed = catch_unwind(AssertUnwindSafe(|| {
        let checkpoints = Checkpoints::new(ck.clone(), "script");
        distil(&cut, teacher, &checkpoints, Some(&mut CrashInEpochTwo(0)))
    }));
    assert!(crashed.is_err(), "the crash happened");
    let resumed = ScriptNetwork::load(module, Device::Cpu).unwrap();
    let _ = Tensor::rand([100], (Kind::Float, Device::Cpu));
    let checkpoints = Checkpoints::new(ck, "script").resuming(true);
    let outcome = distil(&resumed, teacher, &checkpoints, None).unwrap();
    for ((name, a), (_, b)) in variables(whole).iter().zip(&variables(&resumed)) {
        assert!(a.equal(b), "{name} differs after the resume");
    }
    assert_eq!(outcome.history.epochs.len(), expected.history.epochs.len());
    for (a, b) in outcome.history.epochs.iter().zip(&expected.history.epochs) {
        assert_eq!((a.loss, a.val_loss), (b.loss, b.val_loss));
    }
}

//! kd-train from another workspace, training a student of the user's own: a throwaway crate
//! outside this repository defines a plain `tch::nn` network (not a kd architecture), loads a
//! kd teacher from a `.safetensors` file, and distills the one from the other with
//! kd-train's `fit` — early stopping on a metric of its choosing (`val_cross_entropy`), a
//! callback of its own that records each epoch's distillation loss, and checkpoints. Killed
//! in the middle of its fit and run again with `--resume`, it ends with the same weights and
//! the same record as a fit never interrupted (bit for bit: one machine, one thread).
//!
//! Like `kd-core`'s outside-workspace test, the crate builds offline in
//! `target/outside-workspace` with the workspace's `Cargo.lock` and only `LIBTORCH` set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kd_data::{BatchLoader, TransformConfig};
use kd_models::{CnnConfig, Model, ModelConfig};
use kd_train::{fit, Objective, TrainConfig};
use tch::Device;

/// The outside crate's `Cargo.toml`: kd's crates by path, tch, and what its `main` uses.
fn manifest(root: &Path) -> String {
    let kd = ["kd-core", "kd-data", "kd-models", "kd-train"];
    let others = [
        "tch = \"=0.24.0\"",
        "ndarray = \"0.16\"",
        "serde_json = \"1\"",
    ];
    kd_testkit::outside::manifest(root, "outside-student", &kd, &others)
}

/// The teacher's architecture, which the outside crate rebuilds to load the file into.
fn teacher_config() -> ModelConfig {
    ModelConfig::Cnn(CnnConfig {
        channels: vec![8],
        convs_per_stage: 1,
        hidden: 16,
        dropout: 0.0,
    })
}

const MAIN_RS: &str = r#"//! A tch::nn student distilled from a kd teacher file, checkpointed and resumable.
//! Usage: outside-student DIR [--resume]; DIR holds teacher.safetensors.
use std::path::PathBuf;

use kd_core::{Distiller, HintonKdConfig};
use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::{CnnConfig, Model, ModelConfig, Network, TchNetwork};
use kd_train::callback::{Action, Callback, EarlyStoppingConfig, EpochEnd, Monitor};
use kd_train::{fit_with, Checkpoints, FitHooks, Objective, TrainConfig};
use tch::{nn, Device::Cpu};

/// Records each epoch's distillation loss, rewriting `path` (its state: the losses so far).
#[derive(Debug)]
struct LossLog(PathBuf, Vec<f64>);

impl Callback for LossLog {
    fn name(&self) -> &'static str { "loss_log" }
    fn on_epoch_end(&mut self, end: &EpochEnd) -> Vec<Action> {
        self.1.push(end.history.last().unwrap().value("distillation_loss").unwrap());
        let text: String = self.1.iter().map(|l| format!("{l:.9}\n")).collect();
        std::fs::write(&self.0, text).unwrap();
        Vec::new()
    }
    fn state(&self) -> serde_json::Value { serde_json::json!(self.1) }
    fn load_state(&mut self, state: serde_json::Value) -> serde_json::Result<()> {
        self.1 = serde_json::from_value(state)?;
        Ok(())
    }
}

/// 8x8 images of 4 classes: class k lights quadrant k, with deterministic noise.
fn quadrants(n: usize, salt: usize) -> ImageDataset {
    let px = (0..n * 64).map(|j| {
        let (i, y, x) = (j / 64, j % 64 / 8, j % 8);
        let lit = (y / 4) * 2 + x / 4 == (i * 5 + salt) % 4;
        ((i * 29 + y * 11 + x * 7 + salt) % 90) as u8 + if lit { 120 } else { 0 }
    });
    let images = ndarray::Array4::from_shape_vec((n, 1, 8, 8), px.collect()).unwrap();
    let labels = (0..n).map(|i| ((i * 5 + salt) % 4) as u8).collect();
    ImageDataset::new(images, labels, 4, std::path::Path::new("quadrants")).unwrap()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).expect("DIR"));
    let resume = std::env::args().any(|a| a == "--resume");
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let cnn = CnnConfig { channels: vec![8], convs_per_stage: 1, hidden: 16, dropout: 0.0 };
    let mut teacher = Model::new(&ModelConfig::Cnn(cnn), 1, 8, 4, Cpu)?;
    teacher.load(&dir.join("teacher.safetensors"))?;
    teacher.freeze();
    let vs = nn::VarStore::new(Cpu);
    let net = nn::seq_t()
        .add(nn::conv2d(vs.root() / "conv", 1, 6, 3, Default::default()))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([2, 2]).flatten(1, -1))
        .add(nn::linear(vs.root() / "fc", 24, 4, Default::default()));
    let student = TchNetwork::new(vs, net);
    let (train, val) = (quadrants(3000, 0), quadrants(256, 1));
    let tf = TransformConfig::default();
    let train = BatchLoader::new(&train, 16, tf.clone(), Cpu).shuffled(3);
    let val = BatchLoader::new(&val, 256, tf, Cpu);
    let hinton = HintonKdConfig { alpha: 0.5, temperature: 4.0 }.build("distill")?;
    let objective = Objective::Distill(Distiller::live(&teacher, &hinton));
    let monitor = Monitor::new("val_cross_entropy");
    let early_stopping = EarlyStoppingConfig { monitor, patience: 2, ..Default::default() };
    let config = TrainConfig { epochs: 6, batch_size: 16, lr: 5e-3, early_stopping, ..Default::default() };
    let checkpoints = Checkpoints::new(dir.join("checkpoints"), "outside-v1").resuming(resume);
    let log = LossLog(dir.join("losses.txt"), Vec::new());
    let hooks = FitHooks { checkpoints: Some(&checkpoints), callbacks: vec![Box::new(log)], ..Default::default() };
    let outcome = fit_with(&student, &train, &val, &objective, &config, "student", hooks)?;
    student.save_with_metadata(&dir.join("student.safetensors"), &Default::default())?;
    let resumed = outcome.events.iter().any(|e| e.action == "resumed");
    println!("{} epochs, resumed: {resumed}", outcome.history.epochs.len());
    Ok(())
}
"#;

/// Trains a small kd CNN teacher on the quadrants task and saves it as `path`.
fn save_teacher(path: &Path) {
    let _rng = crate::common::global_rng();
    tch::manual_seed(21);
    let data = crate::common::quadrants(512, 0, 120);
    let teacher = Model::new(&teacher_config(), 1, 8, 4, Device::Cpu).unwrap();
    let tf = TransformConfig::default();
    let train = BatchLoader::new(&data, 32, tf.clone(), Device::Cpu).shuffled(5);
    let val = BatchLoader::new(&data, 128, tf, Device::Cpu);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 1e-2,
        ..Default::default()
    };
    fit(
        &teacher,
        &train,
        &val,
        &Objective::CrossEntropy,
        &config,
        "teacher",
    )
    .unwrap();
    teacher.save(path).unwrap();
}

/// Runs the binary on `dir` (with `--resume` if asked) to its end; returns its stdout.
fn run_to_end(bin: &Path, dir: &Path, resume: bool) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg(dir).env_remove("LD_LIBRARY_PATH");
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", dir.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills `child` once its loss record has `epochs` lines; false if it ended before.
fn kill_after(child: &mut Child, record: &Path, epochs: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let lines = std::fs::read_to_string(record).map_or(0, |t| t.lines().count());
        if lines >= epochs {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the outside student did not reach epoch {epochs} in 10 minutes");
}

#[test]
fn an_outside_crates_own_student_distils_checkpoints_and_resumes_bit_for_bit() {
    let test = "an_outside_crates_own_student_distils_checkpoints_and_resumes_bit_for_bit";
    let root = kd_testkit::workspace_root(env!("CARGO_MANIFEST_DIR"));
    let Some(libtorch) = kd_testkit::outside::libtorch(test, &root) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let krate = tmp.path().join("outside-student");
    let manifest = manifest(&root);
    let files = (manifest.as_str(), MAIN_RS);
    let bin = kd_testkit::outside::build(&root, &libtorch, &krate, files, "outside-student");
    let (whole, cut) = (tmp.path().join("whole"), tmp.path().join("cut"));
    for dir in [&whole, &cut] {
        std::fs::create_dir_all(dir).unwrap();
    }
    save_teacher(&whole.join("teacher.safetensors"));
    std::fs::copy(
        whole.join("teacher.safetensors"),
        cut.join("teacher.safetensors"),
    )
    .unwrap();

    let uninterrupted = run_to_end(&bin, &whole, false);
    assert!(uninterrupted.contains("resumed: false"), "{uninterrupted}");
    let mut child = Command::new(&bin)
        .arg(&cut)
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        kill_after(&mut child, &cut.join("losses.txt"), 2),
        "the fit ended before it could be killed"
    );
    assert!(!cut.join("student.safetensors").exists());
    let resumed = run_to_end(&bin, &cut, true);
    assert!(resumed.contains("resumed: true"), "{resumed}");
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    let losses = String::from_utf8(read(&whole, "losses.txt")).unwrap();
    assert!(losses.lines().count() >= 3, "{losses}");
    assert_eq!(read(&whole, "losses.txt"), read(&cut, "losses.txt"));
    assert!(
        read(&whole, "student.safetensors") == read(&cut, "student.safetensors"),
        "the resumed student's weights differ from the uninterrupted one's"
    );
}

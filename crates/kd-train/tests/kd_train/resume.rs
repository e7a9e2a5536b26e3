//! Checkpoint and resume: a fit cut short in the middle of an epoch and resumed from its last
//! checkpoint ends bit for bit where the uninterrupted fit ends (in the same process: one
//! machine, one thread count) — weights, optimizer moments, learning-rate reductions, early
//! stopping's best weights and dropout's random numbers all come back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use kd_data::{BatchLoader, ImageDataset, TransformConfig};
use kd_models::{CnnConfig, Model, ModelConfig};
use kd_train::callback::{EarlyStoppingConfig, ReduceLrConfig};
use kd_train::{
    evaluate, fit_with, Checkpoints, FitHooks, FitOutcome, LrSchedule, Objective, Progress, Split,
    TrainConfig,
};
use tch::{Device, Tensor};

/// The quadrants task of `common`, bright quadrants from 120.
pub(crate) fn quadrants(n: usize, salt: usize) -> ImageDataset {
    crate::common::quadrants(n, salt, 120)
}

/// A batch-normalized CNN with dropout: buffers and random numbers both matter.
pub(crate) fn model(seed: i64) -> Model {
    tch::manual_seed(seed);
    Model::new(&cnn(), 1, 8, 4, Device::Cpu).unwrap()
}

/// [`model`]'s architecture: `features.2` is 8 x 8 x 8, `features.6` 16 x 4 x 4.
pub(crate) fn cnn() -> ModelConfig {
    ModelConfig::Cnn(CnnConfig {
        channels: vec![8, 16],
        convs_per_stage: 1,
        hidden: 16,
        dropout: 0.3,
    })
}

/// Every callback and the per-step schedule in play.
fn config() -> TrainConfig {
    TrainConfig {
        epochs: 7,
        batch_size: 16,
        lr: 0.02,
        weight_decay: 1e-4,
        lr_schedule: LrSchedule::Cosine,
        early_stopping: EarlyStoppingConfig {
            patience: 4,
            restore_at_end: true,
            ..Default::default()
        },
        reduce_lr: ReduceLrConfig {
            patience: 1,
            factor: 0.5,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Panics at batch `batch` of epoch `epoch`, as a killed process stops mid-epoch.
pub(crate) struct CrashAt {
    pub(crate) epoch: usize,
    pub(crate) batch: usize,
    pub(crate) current: usize,
}

impl Progress for CrashAt {
    fn epoch_start(&mut self, _phase: &str, epoch: usize, _epochs: usize, _batches: usize) {
        self.current = epoch;
    }

    fn batch(&mut self, done: usize, _running: &dyn Fn() -> (f64, f64)) {
        if self.current == self.epoch && done == self.batch {
            panic!("simulated crash in epoch {} at batch {done}", self.epoch);
        }
    }
}

struct Task {
    train: ImageDataset,
    val: ImageDataset,
}

impl Task {
    fn new() -> Self {
        Self {
            train: quadrants(160, 0),
            val: quadrants(48, 1),
        }
    }

    fn fit<'a>(
        &self,
        model: &Model,
        config: &TrainConfig,
        checkpoints: &'a Checkpoints,
        progress: Option<&'a mut (dyn Progress + 'a)>,
    ) -> kd_train::Result<FitOutcome> {
        let tf = TransformConfig::default();
        let train = BatchLoader::new(&self.train, 16, tf.clone(), Device::Cpu).shuffled(9);
        let val = BatchLoader::new(&self.val, 48, tf, Device::Cpu);
        fit_with(
            model,
            &train,
            &val,
            &Objective::CrossEntropy,
            config,
            "resume-test",
            FitHooks {
                progress,
                checkpoints: Some(checkpoints),
                ..Default::default()
            },
        )
    }
}

pub(crate) fn assert_same_weights(a: &Model, b: &Model) {
    let (a, b) = (a.var_store().variables(), b.var_store().variables());
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs");
    }
}

/// The metrics that do not depend on wall time.
pub(crate) fn results(outcome: &FitOutcome) -> Vec<(f64, f64, f64, f64, f64)> {
    outcome
        .history
        .epochs
        .iter()
        .map(|m| (m.loss, m.accuracy, m.val_loss, m.val_accuracy, m.lr))
        .collect()
}

#[test]
fn a_fit_cut_short_mid_epoch_resumes_to_the_uninterrupted_result() {
    cut_and_resume(4, 4);
}

#[test]
fn a_fit_cut_short_in_its_last_epoch_keeps_the_best_weights_of_before() {
    // Early stopping's best epoch lies before the cut: its weights must come back from the
    // checkpoint for the restore at the end.
    cut_and_resume(7, 2);
}

/// Runs the fit whole, then cut at batch `batch` of epoch `epoch` and resumed, and compares.
fn cut_and_resume(epoch: usize, batch: usize) {
    let _rng = crate::common::global_rng();
    let task = Task::new();
    let dir = tempfile::tempdir().unwrap();

    let whole = model(21);
    let whole_ck = Checkpoints::new(dir.path().join("whole"), "fp");
    let expected = task.fit(&whole, &config(), &whole_ck, None).unwrap();
    assert!(
        expected.events.iter().any(|e| e.action == "reduce_lr"),
        "the learning rate is reduced at least once: {:?}",
        expected.events
    );

    let best_epoch = expected
        .events
        .iter()
        .filter(|e| e.action == "best_weights_kept")
        .map(|e| e.epoch)
        .max()
        .unwrap();
    if epoch == 7 {
        assert!(
            best_epoch < 6,
            "the best epoch ({best_epoch}) lies before the cut"
        );
    }

    // Cut short at batch `batch` of epoch `epoch` (after the checkpoint of the epoch before).
    let cut_ck = Checkpoints::new(dir.path().join("cut"), "fp");
    let cut = model(21);
    let mut crash = CrashAt {
        epoch,
        batch,
        current: 0,
    };
    let crashed = catch_unwind(AssertUnwindSafe(|| {
        task.fit(&cut, &config(), &cut_ck, Some(&mut crash))
    }));
    assert!(crashed.is_err(), "the crash happened");

    // Resumed into a model with other initial weights, after other random draws: all of it
    // must come from the checkpoint.
    let resumed_model = model(99);
    let _ = Tensor::rand([1000], (tch::Kind::Float, Device::Cpu));
    let resumed = task
        .fit(
            &resumed_model,
            &config(),
            &cut_ck.clone().resuming(true),
            None,
        )
        .unwrap();
    assert_same_weights(&whole, &resumed_model);
    assert_eq!(results(&expected), results(&resumed));
    assert_eq!(
        actions_without_dir(&expected, whole_ck.dir()),
        actions_without_dir(&resumed, cut_ck.dir())
    );
    assert!(resumed
        .events
        .iter()
        .any(|e| e.action == "resumed" && e.epoch == epoch - 1));

    // Resuming a complete fit loads its final weights and trains no further.
    let again = model(5);
    let outcome = task
        .fit(&again, &config(), &cut_ck.clone().resuming(true), None)
        .unwrap();
    assert_same_weights(&whole, &again);
    assert_eq!(results(&outcome), results(&expected));

    best_checkpoint_holds_the_best_epoch(&task, &cut_ck, &expected);
}

#[test]
fn a_fit_paused_at_rungs_and_resumed_ends_where_the_fit_left_alone_ends() {
    let _rng = crate::common::global_rng();
    let task = Task::new();
    let dir = tempfile::tempdir().unwrap();
    let whole = model(21);
    let whole_ck = Checkpoints::new(dir.path().join("whole"), "fp");
    let expected = task.fit(&whole, &config(), &whole_ck, None).unwrap();
    assert!(expected.complete);

    // Paused after epochs 2 and 5 (each time into a fresh model), then run to the end.
    let ck = Checkpoints::new(dir.path().join("rungs"), "fp").resuming(true);
    let val = BatchLoader::new(&task.val, 48, TransformConfig::default(), Device::Cpu);
    let train =
        BatchLoader::new(&task.train, 16, TransformConfig::default(), Device::Cpu).shuffled(9);
    let mut rungs = Vec::new();
    for (seed, pause) in [(21, Some(2)), (98, Some(5)), (97, Some(5)), (96, None)] {
        let m = model(seed);
        let hooks = FitHooks {
            checkpoints: Some(&ck),
            pause_after: pause,
            ..Default::default()
        };
        let objective = Objective::CrossEntropy;
        let outcome = fit_with(
            &m,
            &train,
            &val,
            &objective,
            &config(),
            "resume-test",
            hooks,
        );
        rungs.push((outcome.unwrap(), m));
    }
    let epochs: Vec<(usize, bool)> = rungs
        .iter()
        .map(|(o, _)| (o.history.epochs.len(), o.complete))
        .collect();
    // The second pause at 5 finds the fit there already and trains nothing.
    assert_eq!(epochs[..3], [(2, false), (5, false), (5, false)]);
    let (last, last_model) = &rungs[3];
    assert!(last.complete);
    assert_same_weights(&whole, last_model);
    assert_eq!(results(&expected), results(last));
    // A pause needs checkpoints to resume from.
    let hooks = FitHooks {
        pause_after: Some(1),
        ..Default::default()
    };
    let objective = Objective::CrossEntropy;
    let err = fit_with(&model(1), &train, &val, &objective, &config(), "p", hooks).unwrap_err();
    assert!(
        err.to_string().contains("checkpoints to resume from"),
        "{err}"
    );
}

/// A fit's events but `resumed`, as (epoch, action, detail) with `dir` written `DIR`: paths
/// differ between two checkpoint directories, the rest of each event does not.
fn actions_without_dir(o: &FitOutcome, dir: &Path) -> Vec<(usize, String, String)> {
    let dir = dir.display().to_string();
    o.events
        .iter()
        .filter(|e| e.action != "resumed")
        .map(|e| (e.epoch, e.action.clone(), e.detail.replace(&dir, "DIR")))
        .collect()
}

/// `best.safetensors` of `ck` holds the best epoch's weights by early stopping's rule (lower
/// by more than min_delta): evaluated again, they give that epoch's validation loss in
/// `expected`.
fn best_checkpoint_holds_the_best_epoch(task: &Task, ck: &Checkpoints, expected: &FitOutcome) {
    let mut best = model(6);
    best.load(&ck.best_path()).unwrap();
    let val = BatchLoader::new(&task.val, 48, TransformConfig::default(), Device::Cpu);
    let reloaded = evaluate(&best, &val, &Objective::CrossEntropy, Split::Validation).unwrap();
    let min_delta = config().early_stopping.min_delta;
    let lowest = expected
        .history
        .epochs
        .iter()
        .map(|m| m.val_loss)
        .fold(f64::INFINITY, |b, v| if v < b - min_delta { v } else { b });
    assert!(
        (reloaded.loss - lowest).abs() < 1e-9,
        "best {} vs lowest {lowest}",
        reloaded.loss
    );
}

/// A complete two-epoch fit of `task`, checkpointed in a new directory; its config.
fn two_epochs_checkpointed(task: &Task) -> (tempfile::TempDir, Checkpoints, TrainConfig) {
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoints::new(dir.path(), "fp");
    let short = TrainConfig {
        epochs: 2,
        ..config()
    };
    task.fit(&model(1), &short, &ck, None).unwrap();
    (dir, ck, short)
}

#[test]
fn a_checkpoint_from_another_configuration_is_refused_and_kept() {
    let _rng = crate::common::global_rng();
    let task = Task::new();
    let (dir, ck, short) = two_epochs_checkpointed(&task);
    let before = std::fs::read(ck.last_path()).unwrap();

    let other = TrainConfig {
        lr: 0.03,
        ..short.clone()
    };
    let err = task
        .fit(&model(1), &other, &ck.clone().resuming(true), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("written by another configuration"), "{err}");
    let fingerprint = Checkpoints::new(dir.path(), "another run").resuming(true);
    let err = task
        .fit(&model(1), &short, &fingerprint, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("last.safetensors"), "{err}");
    assert_eq!(
        std::fs::read(ck.last_path()).unwrap(),
        before,
        "nothing overwritten"
    );
}

#[test]
fn a_checkpoint_of_an_older_format_is_refused_naming_both_versions() {
    let _rng = crate::common::global_rng();
    let task = Task::new();
    let (_dir, ck, short) = two_epochs_checkpointed(&task);
    // The same checkpoint with a state laid out as format 1 wrote it: the callbacks in
    // fields of their own and the best value beside them.
    let path = ck.last_path();
    let tensors = kd_models::tensor_file::read_tensors(&path).unwrap();
    let header = kd_models::metadata::read_metadata(&path).unwrap();
    let mut state: serde_json::Value =
        serde_json::from_str(&header[kd_train::state::STATE_KEY]).unwrap();
    let fields = state.as_object_mut().unwrap();
    fields.insert("format".into(), 1.into());
    fields.remove("best");
    fields.remove("callbacks");
    fields.insert("early".into(), serde_json::Value::Null);
    fields.insert("reduce".into(), serde_json::Value::Null);
    fields.insert("best_value".into(), 0.5.into());
    fields.insert("best_epoch".into(), 2.into());
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
    let metadata = std::collections::BTreeMap::from([(
        kd_train::state::STATE_KEY.to_string(),
        state.to_string(),
    )]);
    kd_models::tensor_file::write_tensors(&path, &tensors, &metadata).unwrap();
    let before = std::fs::read(&path).unwrap();

    let err = task
        .fit(&model(1), &short, &ck.clone().resuming(true), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("last.safetensors")
            && err.contains("checkpoint format 1, this kd reads format 2"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing overwritten");
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_it() {
    let _rng = crate::common::global_rng();
    let task = Task::new();
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoints::new(dir.path(), "fp").resuming(true);
    std::fs::write(ck.last_path(), b"\x10\0\0\0\0\0\0\0{\"a\": 1}       ").unwrap();
    let err = task
        .fit(&model(1), &config(), &ck, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("last.safetensors"), "{err}");
}

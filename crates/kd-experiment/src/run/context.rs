//! What every training phase of a run shares: the run directory, the test set, the log, the
//! progress display and the ranks — and the two things each phase does with a model: fit
//! it (the one place a fit is wired to checkpoints, progress and data parallelism) and
//! finish it (save, evaluate on the test set, report).

use std::path::{Path, PathBuf};

use anyhow::Result;
use kd_data::BatchLoader;
use kd_models::{Model, ModelConfig};
use kd_train::{fit_with, Checkpoints, FitHooks, FitOutcome, Objective, TrainConfig};
use tch::Device;

use super::build::build_model;
use super::observer::Observer;
use super::plan::Plan;
use super::test_eval::evaluate_test;
use super::Ranks;
use crate::config::RunConfig;
use crate::report::{median, ModelReport, PrecisionScore};
use crate::run_log::RunLog;
use crate::saved_model::ModelInfo;

/// The state shared by the phases of a run.
pub(super) struct RunContext<'a> {
    pub cfg: &'a RunConfig,
    pub out: &'a Path,
    pub plan: &'a Plan,
    pub test: BatchLoader<'a>,
    pub log: RunLog,
    pub observer: &'a mut dyn Observer,
    /// Fingerprint of the resolved config, for checkpoints.
    pub fingerprint: String,
    pub resume: bool,
    pub ranks: Ranks<'a>,
    /// Fits pause after this epoch (a tune's rung), to resume from their checkpoints.
    pub pause_after: Option<usize>,
}

/// What finishing a model gives: its report and its test-set confusion matrix.
pub(super) type Finished = (ModelReport, Vec<Vec<i64>>);

/// Where a finished model comes from, which decides its file and its description.
#[derive(Debug, Clone, Copy)]
pub(super) enum Built<'m> {
    /// Built by kd from this config: saved as `<role>.safetensors`.
    Kd(&'m ModelConfig),
    /// A file from outside kd (`kind`: `torchscript`, `onnx`): not saved by kd, named by
    /// its file.
    Outside {
        kind: &'static str,
        files: &'m [(PathBuf, f64)],
        parameters: usize,
    },
}

impl<'a> RunContext<'a> {
    /// The context of `plan`'s phases, told to `observer`, on `ranks`, fits pausing after
    /// `pause_after` epochs (a tune's rung) or not.
    pub fn new(
        plan: &'a Plan,
        observer: &'a mut dyn Observer,
        ranks: Ranks<'a>,
        pause_after: Option<usize>,
    ) -> Self {
        let transform = plan.cfg.data.transform.clone();
        Self {
            cfg: &plan.cfg,
            out: &plan.out,
            plan,
            test: BatchLoader::new(&plan.data.test, super::EVAL_BATCH, transform, plan.device),
            log: RunLog::default(),
            observer,
            fingerprint: plan.fingerprint.clone(),
            resume: plan.resume,
            ranks,
            pause_after,
        }
    }

    /// The validation images in batches of [`super::EVAL_BATCH`], as every fit validates.
    pub fn validation_loader(&self) -> BatchLoader<'a> {
        let transform = self.cfg.data.transform.clone();
        BatchLoader::new(
            &self.plan.data.val,
            super::EVAL_BATCH,
            transform,
            self.plan.device,
        )
    }
}

impl RunContext<'_> {
    /// Runs `f`, which does `activity`; out of memory in it is an error naming the activity
    /// and the run's checkpoints ([`crate::oom::guard`]).
    pub fn guard<T>(&self, activity: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let checkpoints = self.out.join("checkpoints").display().to_string();
        crate::oom::guard(activity, Some(&checkpoints), f)
    }

    pub fn device(&self) -> Device {
        self.plan.device
    }

    /// A model built from `config` for the run's data, precision and memory format.
    pub fn build(&self, config: &ModelConfig) -> Result<Model> {
        build_model(self.cfg, config, self.plan.shape, self.device())
    }

    /// What a model file of this run says about a model built from `config`.
    pub fn model_info(&self, config: &ModelConfig) -> ModelInfo {
        let train = &self.plan.data.train;
        ModelInfo {
            model: config.clone(),
            input_shape: train.image_shape(),
            classes: train.classes(),
            transform: self.cfg.data.transform.clone(),
            dataset: self.cfg.data.dataset,
            class_names: self.plan.data.class_names.clone(),
            image_folder: (self.cfg.data.dataset == kd_data::DatasetKind::ImageFolder)
                .then(|| self.cfg.data.image_folder.clone()),
            precision: Some(self.cfg.precision()),
            channels_last: Some(self.cfg.channels_last),
            data_dir: self.plan.recorded_data_dir(),
        }
    }

    /// Fits `model` (built from `model_config`) as the `role` phase, checkpointed in
    /// `checkpoints/<role>`, on the `(train, val)` loaders; out of memory is an error naming
    /// the phase ([`RunContext::guard`]).
    pub fn fit(
        &mut self,
        role: &str,
        model: &Model,
        model_config: &ModelConfig,
        (train, val): (&BatchLoader, &BatchLoader),
        objective: &Objective,
        config: &TrainConfig,
    ) -> Result<FitOutcome> {
        let checkpoints = self.checkpoints(role, model_config);
        let hooks = FitHooks {
            progress: Some(&mut *self.observer),
            checkpoints: Some(&checkpoints),
            parallel: self.ranks.parallel,
            callbacks: Vec::new(),
            metrics: Vec::new(),
            pause_after: self.pause_after,
        };
        let activity = match role {
            "teacher" => "training the teacher".to_string(),
            student => format!("training the {student} student"),
        };
        let dir = self.out.join("checkpoints").display().to_string();
        crate::oom::guard(&activity, Some(&dir), || {
            Ok(fit_with(model, train, val, objective, config, role, hooks)?)
        })
    }

    /// The checkpoints of `role`'s fit (a model of `model_config`): `checkpoints/<role>` in
    /// the run directory, resumed if the run resumes, read-only but on the writing rank.
    pub fn checkpoints(&self, role: &str, model_config: &ModelConfig) -> Checkpoints {
        let checkpoints = Checkpoints::new(
            self.out.join("checkpoints").join(role),
            self.fingerprint.clone(),
        )
        .with_model_metadata(self.model_info(model_config).to_metadata())
        .resuming(self.resume);
        if self.ranks.writer() {
            checkpoints
        } else {
            checkpoints.read_only()
        }
    }

    /// Saves a model kd built as `<role>.safetensors` (on the writing rank); returns its
    /// weights' file name(s), their bytes, its architecture and its parameters.
    fn save(
        &self,
        role: &str,
        model: &Model,
        built: Built,
    ) -> Result<(String, u64, String, usize)> {
        Ok(match built {
            Built::Kd(config) => {
                let weights = format!("{role}.safetensors");
                let metadata = self.model_info(config).to_metadata();
                let bytes = if self.ranks.writer() {
                    model.save_with_metadata(&self.out.join(&weights), &metadata)?
                } else {
                    0
                };
                let parameters = model.trainable_parameters();
                (weights, bytes, config.describe(), parameters)
            }
            Built::Outside {
                kind,
                files,
                parameters,
            } => {
                let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
                let bytes = files.iter().map(|(p, _)| size(p)).sum();
                let names: Vec<String> =
                    files.iter().map(|(p, _)| p.display().to_string()).collect();
                (names.join(", "), bytes, kind.to_string(), parameters)
            }
        })
    }

    /// Saves `model` as `<role>.safetensors` (rank 0; a TorchScript teacher stays where it
    /// is), evaluates it on the test set ([`evaluate_test`]), logs its fit and returns its
    /// report.
    pub fn finish(
        &mut self,
        role: &str,
        model: &mut Model,
        built: Built,
        origin: Option<String>,
        objective: serde_json::Value,
        outcome: Option<&FitOutcome>,
    ) -> Result<Finished> {
        let (weights, file_bytes, architecture, parameters) = self.save(role, model, built)?;
        let classes = self.plan.shape[2];
        let [c, hw, _] = self.plan.shape.map(|d| d as i64);
        let input_shape = [c, hw, hw];
        let tested = evaluate_test(model, &self.test, classes)?;
        let eval = tested.float32;
        let history = outcome.map(|o| o.history.epochs.as_slice()).unwrap_or(&[]);
        if let Some(outcome) = outcome {
            self.log.add_fit(role, outcome);
        }
        self.log.event(role, history.len(), "saved", &weights);
        let throughputs: Vec<f64> = history.iter().map(|m| m.train_images_per_s).collect();
        tracing::info!(
            "{role}: test accuracy {:.2}% in f32 (loss {:.4}){}, {parameters} parameters, {:.2} MB",
            100.0 * eval.accuracy,
            eval.loss,
            tested.run_precision.map_or(String::new(), |(p, e)| format!(
                ", {:.2}% in {p}",
                100.0 * e.accuracy
            )),
            file_bytes as f64 / 1048576.0
        );
        let report = ModelReport {
            role: role.into(),
            architecture,
            pretrained: origin,
            objective,
            test_accuracy: eval.accuracy,
            test_loss: eval.loss,
            parameters,
            file_bytes,
            train_seconds: outcome.map_or(0.0, |o| o.seconds),
            epochs_run: history.len(),
            stopped_epoch: outcome.and_then(|o| o.stopped_epoch),
            train_images_per_s: median(&throughputs),
            eval_images_per_s: tested.images_per_s(),
            weights,
            labelled_images: 0,
            unlabeled_images: 0,
            test_in_run_precision: tested.run_precision.map(|(precision, e)| PrecisionScore {
                precision: precision.name().into(),
                accuracy: e.accuracy,
                loss: e.loss,
            }),
            latency: Some(crate::latency::model_latency(model, input_shape)),
            members: Vec::new(),
            card: None,
        };
        Ok((report, tested.confusion))
    }
}

/// The report's description of a model trained on labels alone.
pub(super) fn cross_entropy() -> serde_json::Value {
    serde_json::json!({ "loss": "cross-entropy" })
}

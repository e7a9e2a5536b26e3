//! `kd-cli run CONFIG`: the whole experiment of the seed notebook from one config: train (or
//! load) the teacher, distill the student from the teacher's cached logits, train the same
//! student from the same initial weights without the teacher as the baseline, evaluate all
//! three on the test set, save them, and write the run directory:
//!
//! ```text
//! <out>/config.toml        the resolved config (defaults filled in, CLI overrides applied)
//! <out>/metrics.jsonl      one line per epoch: {"phase": .., "epoch": .., "loss": .., ...}
//! <out>/report.json        the comparison (see `report.rs`)
//! <out>/teacher.safetensors, distilled.safetensors, scratch.safetensors
//! <out>/checkpoints/<phase>/last.safetensors, best.safetensors   (see kd_train::checkpoint)
//! ```
//!
//! `--resume <out>` continues an interrupted run: finished phases load their final weights
//! from their checkpoints, the interrupted one continues after its last completed epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kd_core::{FitNetsConfig, FitNetsHint, LogitCache, LossConfig};
use kd_data::{
    holdout_split, random_subset, BatchLoader, DatasetKind, ImageDataset, TransformConfig,
};
use kd_models::{Model, ModelConfig};
use kd_train::distributed::{launch_env, DataParallel, ProcessGroup};
use kd_train::{
    evaluate_with_confusion, fit_with, Checkpoints, FitHooks, FitOutcome, Objective, Split,
    TeacherSignal,
};
use tch::Device;

use crate::atomic::write_atomic;
use crate::config::RunConfig;
use crate::env::{device_name, peak_rss_bytes, prepare_device};
use crate::progress::TerminalProgress;
use crate::report::{median, ModelReport, Report};
use crate::run_log::RunLog;
use crate::saved_model::ModelInfo;

/// Overrides given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    /// `--set KEY=VALUE` overrides, applied after the file and before `seed`/`threads`.
    pub sets: Vec<crate::config::Override>,
    /// `--resume DIR`: continue the run in DIR.
    pub resume: Option<PathBuf>,
    /// `--device`: overrides the config's device.
    pub device: Option<crate::config::DeviceChoice>,
    /// No progress bars.
    pub quiet: bool,
}

/// The three splits used by a run.
pub(crate) struct RunData {
    pub train: ImageDataset,
    pub val: ImageDataset,
    pub test: ImageDataset,
}

/// How many training images the students learn from: `student.train_images`, or the whole
/// training split (0); more than the split is an error naming the key.
pub(crate) fn student_images(cfg: &RunConfig, data: &RunData, config_path: &Path) -> Result<usize> {
    match cfg.student.train_images {
        0 => Ok(data.train.len()),
        n if n > data.train.len() => bail!(
            "{}: student.train_images: expected at most {} (the training split), got {n}",
            config_path.display(),
            data.train.len()
        ),
        n => Ok(n),
    }
}

/// Reads the config's dataset and splits it as the run does.
pub(crate) fn load_data(cfg: &RunConfig) -> Result<RunData> {
    let d = &cfg.data;
    let splits = d.dataset.load(&d.dir())?;
    let limit = |ds: ImageDataset, n: usize| {
        if n == 0 || n >= ds.len() {
            ds
        } else {
            ds.select(&(0..n).collect::<Vec<_>>())
        }
    };
    let train_all = limit(splits.train, d.train_limit);
    let test = limit(splits.test, d.test_limit);
    let (train, val) = if d.validation_holdout == 0 {
        (train_all, test.clone())
    } else {
        holdout_split(&train_all, d.validation_holdout, cfg.seed)?
    };
    d.transform
        .validate("data.transform", train.image_shape())?;
    Ok(RunData { train, val, test })
}

/// Trains or loads a model, saves it, evaluates it on the test set.
struct Phase<'a> {
    out: &'a Path,
    test: &'a BatchLoader<'a>,
    log: &'a mut RunLog,
    /// What every saved model takes as input (each file adds its architecture).
    input_shape: [usize; 3],
    classes: usize,
    transform: &'a TransformConfig,
    dataset: DatasetKind,
    /// Fingerprint of the resolved config, for checkpoints.
    fingerprint: String,
    resume: bool,
    /// Whether this process writes files (rank 0).
    writer: bool,
}

impl Phase<'_> {
    /// What a model file of this run says about a model built from `config`.
    fn model_info(&self, config: &ModelConfig) -> ModelInfo {
        ModelInfo {
            model: config.clone(),
            input_shape: self.input_shape,
            classes: self.classes,
            transform: self.transform.clone(),
            dataset: self.dataset,
        }
    }

    /// The checkpoints of the `role` phase (a model built from `config`).
    fn checkpoints(&self, role: &str, config: &ModelConfig) -> Checkpoints {
        let checkpoints = Checkpoints::new(
            self.out.join("checkpoints").join(role),
            self.fingerprint.clone(),
        )
        .with_model_metadata(self.model_info(config).to_metadata())
        .resuming(self.resume);
        if self.writer {
            checkpoints
        } else {
            checkpoints.read_only()
        }
    }

    fn finish(
        &mut self,
        role: &str,
        model: &Model,
        config: &ModelConfig,
        pretrained: Option<String>,
        objective: serde_json::Value,
        outcome: Option<&FitOutcome>,
    ) -> Result<(ModelReport, Vec<Vec<i64>>)> {
        let weights = format!("{role}.safetensors");
        let info = self.model_info(config);
        let file_bytes = if self.writer {
            model.save_with_metadata(&self.out.join(&weights), &info.to_metadata())?
        } else {
            0
        };
        let (eval, confusion) = evaluate_with_confusion(
            model,
            self.test,
            &Objective::CrossEntropy,
            Split::Validation,
            self.classes,
        );
        let history = outcome.map(|o| o.history.epochs.as_slice()).unwrap_or(&[]);
        if let Some(outcome) = outcome {
            self.log.add_fit(role, outcome);
        }
        self.log.event(role, history.len(), "saved", &weights);
        let throughputs: Vec<f64> = history.iter().map(|m| m.train_images_per_s).collect();
        tracing::info!(
            "{role}: test accuracy {:.2}% (loss {:.4}), {} parameters, {:.2} MB",
            100.0 * eval.accuracy,
            eval.loss,
            model.trainable_parameters(),
            file_bytes as f64 / 1048576.0
        );
        let report = ModelReport {
            role: role.into(),
            architecture: config.describe(),
            pretrained,
            objective,
            test_accuracy: eval.accuracy,
            test_loss: eval.loss,
            parameters: model.trainable_parameters(),
            file_bytes,
            train_seconds: outcome.map_or(0.0, |o| o.seconds),
            epochs_run: history.len(),
            stopped_epoch: outcome.and_then(|o| o.stopped_epoch),
            train_images_per_s: median(&throughputs),
            eval_images_per_s: eval.images_per_s,
            weights,
        };
        Ok((report, confusion))
    }
}

/// The FitNets hint between the configured layers, its regressor in the student's
/// variable store (under `aux.`, so it trains with the student but is not saved with it).
fn fitnets_hint(
    config: &FitNetsConfig,
    teacher: &Model,
    student: &Model,
    [c, h, w]: [usize; 3],
) -> Result<FitNetsHint> {
    let probe = tch::Tensor::zeros(
        [1, c as i64, h as i64, w as i64],
        (tch::Kind::Float, student.var_store().device()),
    );
    let channels = |model: &Model, key: &str, layer: &str| -> Result<i64> {
        let Some(feature) = tch::no_grad(|| model.forward_feature(&probe, false, layer)) else {
            let names: Vec<&str> = model
                .layers()
                .layers()
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            bail!("distill.{key}: expected one of the model's layers {names:?}, got {layer:?}");
        };
        let size = feature.size();
        if size.len() != 4 {
            bail!(
                "distill.{key}: expected a layer with a [c, h, w] output, {layer} gives {:?}",
                &size[1..]
            );
        }
        Ok(size[1])
    };
    let cs = channels(student, "student_layer", &config.student_layer)?;
    let ct = channels(teacher, "teacher_layer", &config.teacher_layer)?;
    let path = student.var_store().root() / "aux" / "hint";
    Ok(config.build("distill", &path, cs, ct)?)
}

/// The report's description of a model trained on labels alone.
fn cross_entropy() -> serde_json::Value {
    serde_json::json!({ "loss": "cross-entropy" })
}

/// The run's PNG plots, each written atomically; a plot that cannot be drawn (no font, say)
/// is a warning, not a failed run.
fn write_plots(out: &Path, log: &RunLog, dataset: kd_data::DatasetKind, confusion: &[Vec<i64>]) {
    let classes = crate::eval::class_labels(dataset, confusion.len());
    type Draw<'a> = &'a dyn Fn(&Path) -> Result<()>;
    let plots: [(&str, Draw); 3] = [
        ("learning_curves.png", &|p| {
            crate::plots::learning_curves(log.rows(), p)
        }),
        ("lr_schedule.png", &|p| {
            crate::plots::lr_schedule(log.rows(), p)
        }),
        ("confusion_distilled.png", &|p| {
            crate::plots::confusion("distilled student, test set", &classes, confusion, p)
        }),
    ];
    for (name, draw) in plots {
        if let Err(e) = crate::atomic::write_atomic_with(&out.join(name), draw) {
            tracing::warn!("{name} not drawn: {e:#}");
        }
    }
}

/// Builds `model` for `[channels, height, classes]` on `device` with the run's precision and
/// memory format.
fn build_model(
    cfg: &RunConfig,
    model: &ModelConfig,
    [channels, height, classes]: [usize; 3],
    device: Device,
) -> Result<Model> {
    let mut built = Model::new(model, channels, height, classes, device)?;
    built
        .set_precision(cfg.precision)
        .context("precision: invalid config")?;
    if cfg.channels_last {
        built.use_channels_last();
    }
    Ok(built)
}

/// The labels of `data` as an i64 tensor on `device`.
fn student_labels(data: &ImageDataset, device: Device) -> tch::Tensor {
    let labels: Vec<i64> = data.labels().iter().map(|&l| i64::from(l)).collect();
    tch::Tensor::from_slice(&labels).to_device(device)
}

/// The config of `config_path` with the command line's overrides applied and checked, and
/// the warnings its resolution gives ([`RunConfig::load_with_warnings`]).
pub fn resolve_config(
    config_path: &Path,
    overrides: &RunOverrides,
) -> Result<(RunConfig, Vec<String>)> {
    let (mut cfg, warnings) = RunConfig::load_with_warnings(config_path, &overrides.sets)?;
    if let Some(seed) = overrides.seed {
        cfg.seed = seed;
    }
    if let Some(threads) = overrides.threads {
        cfg.threads = threads;
    }
    if let Some(device) = overrides.device {
        cfg.device = device;
    }
    cfg.validate()
        .with_context(|| format!("{}: invalid config", config_path.display()))?;
    Ok((cfg, warnings))
}

/// The run directory: `--resume`'s, `--out`, or `runs/<name>/seed-<seed>`.
pub fn run_dir(cfg: &RunConfig, overrides: &RunOverrides) -> Result<PathBuf> {
    Ok(match (&overrides.resume, &overrides.out) {
        (Some(dir), Some(out)) if dir != out => bail!(
            "--resume {} with --out {}: a resumed run continues in its own directory; drop --out",
            dir.display(),
            out.display()
        ),
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => PathBuf::from("runs")
            .join(&cfg.name)
            .join(format!("seed-{}", cfg.seed)),
    })
}

/// Runs the experiment described by `config_path`; returns the report.
pub fn run(config_path: &Path, overrides: &RunOverrides) -> Result<Report> {
    let start = Instant::now();
    let (cfg, warnings) = resolve_config(config_path, overrides)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let out = run_dir(&cfg, overrides)?;
    // Under torchrun or `kd-cli launch`: join the other ranks first.
    let launch = launch_env(|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("distributed launch environment: {e}"))?;
    let group = match &launch {
        Some(env) => Some(ProcessGroup::join(&env.rendezvous)?),
        None => None,
    };
    let ranks = Ranks {
        parallel: group.as_ref().map(|group| DataParallel { group }),
        local_rank: launch.as_ref().map_or(0, |l| l.local_rank),
    };
    let checkpoints_dir = out.join("checkpoints").display().to_string();
    crate::oom::guard(Some(&checkpoints_dir), || {
        run_in(config_path, overrides, &cfg, &out, start, ranks)
    })
}

/// This process's place among the ranks of a data-parallel run.
#[derive(Debug, Clone, Copy)]
struct Ranks<'a> {
    parallel: Option<DataParallel<'a>>,
    local_rank: usize,
}

impl Ranks<'_> {
    /// Whether this process writes the run directory (rank 0, or the only process).
    fn writer(&self) -> bool {
        self.parallel.is_none_or(|p| p.rank() == 0)
    }
}

/// [`run`] once the config is resolved and the run directory chosen.
fn run_in(
    config_path: &Path,
    overrides: &RunOverrides,
    cfg: &RunConfig,
    out: &Path,
    start: Instant,
    ranks: Ranks,
) -> Result<Report> {
    let writer = ranks.writer();
    let resolved = cfg.to_toml()?;
    if overrides.resume.is_some() {
        // Before anything is written: a mismatch leaves the directory as it was.
        crate::resume::check_same_config(out, &resolved)?;
    }

    let data = load_data(cfg)?;
    let [c, h, _] = cfg.data.transform.output_shape(data.train.image_shape());
    let classes = data.train.classes();
    for (key, model) in [
        ("teacher.model", &cfg.teacher.model),
        ("student.model", &cfg.student.model),
    ] {
        model
            .validate(key, h)
            .with_context(|| format!("{}: invalid config", config_path.display()))?;
    }
    let device = match (cfg.device.resolve("device")?, ranks.parallel) {
        // One GPU per rank on each machine.
        (Device::Cuda(_), Some(_)) => Device::Cuda(ranks.local_rank),
        (device, _) => device,
    };
    prepare_device(device);
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let kd_loss = match &cfg.distill {
        LossConfig::Fitnets(_) => None,
        logits => Some(logits.build("distill")?),
    };
    if let Some(loss) = &kd_loss {
        loss.check_classes(classes)
            .with_context(|| format!("{}: invalid config", config_path.display()))?;
    }
    if writer {
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create the run directory", out.display()))?;
        write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
        crate::logging::log_to_file(&out.join("train.log"), overrides.resume.is_some())?;
    }
    let checkpoints = out.join("checkpoints");
    if writer && overrides.resume.is_none() && checkpoints.exists() {
        // A new run in an old directory: the old run's checkpoints must never be resumed.
        std::fs::remove_dir_all(&checkpoints)
            .with_context(|| format!("{}: cannot remove", checkpoints.display()))?;
    }
    student_images(cfg, &data, config_path)?;
    tracing::info!(
        "run {} (seed {}) on {}: {} train / {} validation / {} test images of {c}x{h}x{h}, writing to {}",
        cfg.name,
        cfg.seed,
        device_name(device),
        data.train.len(),
        data.val.len(),
        data.test.len(),
        out.display()
    );

    let seed = cfg.seed;
    let tf = &cfg.data.transform;
    let test_loader = BatchLoader::new(&data.test, 1000, tf.clone(), device);
    let mut log = RunLog::default();
    let mut bars = TerminalProgress::new(overrides.quiet || !writer);
    if let Some(p) = ranks.parallel {
        tracing::info!(
            "data parallel: rank {} of {}, global batch sizes as configured",
            p.rank(),
            p.world_size()
        );
    }
    let mut phase = Phase {
        out,
        test: &test_loader,
        log: &mut log,
        input_shape: data.train.image_shape(),
        classes,
        transform: tf,
        dataset: cfg.data.dataset,
        fingerprint: crate::resume::fingerprint(&resolved),
        resume: overrides.resume.is_some(),
        writer,
    };

    crate::oom::set_activity("building the teacher");
    // Teacher: load or train (from pretrained feature weights when configured).
    tch::manual_seed(seed as i64);
    let teacher_cfg = match &cfg.teacher.checkpoint {
        Some(_) => cfg.teacher.model.without_pretrained(),
        None => cfg.teacher.model.clone(),
    };
    let mut teacher = build_model(cfg, &teacher_cfg, [c, h, classes], device)?;
    let teacher_origin = match (&cfg.teacher.checkpoint, teacher.pretrained()) {
        (Some(ckpt), _) => Some(format!("checkpoint {}", ckpt.display())),
        (None, Some(loaded)) => Some(format!(
            "{} tensors ({} parameters) from {}",
            loaded.tensors,
            loaded.parameters,
            loaded.path.display()
        )),
        (None, None) => {
            let arch = cfg.teacher.model.describe();
            if let ModelConfig::Vgg(_) = cfg.teacher.model {
                tracing::warn!(
                    "teacher {arch}: no pretrained weights or checkpoint configured; starting from random initialization"
                );
            } else {
                tracing::info!("teacher {arch} starts from random initialization");
            }
            None
        }
    };
    if let LossConfig::Fitnets(f) = &cfg.distill {
        // Check the hinted layers now, before hours of teacher training.
        let probe_student = build_model(cfg, &cfg.student.model, [c, h, classes], device)?;
        fitnets_hint(f, &teacher, &probe_student, [c, h, h])
            .with_context(|| format!("{}: invalid config", config_path.display()))?;
    }
    crate::oom::set_activity("training the teacher");
    let teacher_outcome = match &cfg.teacher.checkpoint {
        Some(path) => {
            teacher.load(path)?;
            tracing::info!("teacher loaded from {}", path.display());
            None
        }
        None => {
            let t = &cfg.teacher.train;
            let train = BatchLoader::new(&data.train, t.batch_size, tf.clone(), device)
                .shuffled(seed)
                .augmented(t.augment.clone());
            let val = BatchLoader::new(&data.val, t.batch_size, tf.clone(), device);
            Some(fit_with(
                &teacher,
                &train,
                &val,
                &Objective::CrossEntropy,
                t,
                "teacher",
                FitHooks {
                    progress: Some(&mut bars),
                    checkpoints: Some(&phase.checkpoints("teacher", &teacher_cfg)),
                    parallel: ranks.parallel,
                },
            )?)
        }
    };
    teacher.freeze();
    let (teacher_report, _) = phase.finish(
        "teacher",
        &teacher,
        &teacher_cfg,
        teacher_origin,
        cross_entropy(),
        teacher_outcome.as_ref(),
    )?;

    // The students' training images: all of the training split, or a seeded subset.
    let student_train = match cfg.student.train_images {
        0 => data.train.clone(),
        n => random_subset(&data.train, n, seed.wrapping_add(2))?,
    };
    let s = &cfg.student.train;
    let augmented = s.augment.is_enabled();
    let train = BatchLoader::new(&student_train, s.batch_size, tf.clone(), device)
        .shuffled(seed.wrapping_add(1))
        .augmented(s.augment.clone());
    let val = BatchLoader::new(&data.val, s.batch_size, tf.clone(), device);

    // The teacher's logits: cached once per image (exact without augmentation), or live.
    let cache = &cfg.teacher.cache;
    crate::oom::set_activity("caching the teacher's logits");
    let caches = if kd_loss.is_some() && cache.mode.caches(augmented) {
        let started = Instant::now();
        let build = |d: &ImageDataset| -> Result<LogitCache> {
            let Some(dp) = ranks.parallel else {
                return Ok(kd_train::cache_teacher_logits(
                    &teacher,
                    &BatchLoader::new(d, 1000, tf.clone(), device),
                    cache.dtype,
                ));
            };
            dp.logit_cache(&teacher, d, tf, device, cache.dtype)
                .map_err(|e| anyhow::anyhow!("teacher logits: {e}"))
        };
        let (train_cache, val_cache) = (build(&student_train)?, build(&data.val)?);
        let cached_accuracy = train_cache
            .logits()
            .argmax(-1, false)
            .eq_tensor(&student_labels(
                &student_train,
                train_cache.logits().device(),
            ))
            .to_kind(tch::Kind::Float)
            .mean(tch::Kind::Float)
            .double_value(&[]);
        tracing::info!(
            "teacher logits cached ({:?}) for {} training and {} validation images in {:.1}s (teacher accuracy on the training images {:.2}%)",
            cache.dtype,
            student_train.len(),
            data.val.len(),
            started.elapsed().as_secs_f64(),
            100.0 * cached_accuracy
        );
        Some((train_cache, val_cache))
    } else {
        tracing::info!("teacher runs live on every student batch (no logit cache)");
        None
    };
    let mut distill_objective = serde_json::to_value(&cfg.distill)?;
    distill_objective["teacher_logits"] = match &caches {
        Some(_) => format!("cached, {:?}", cache.dtype).to_lowercase().into(),
        None => "live".into(),
    };
    let teacher_signal = match &caches {
        Some((train, val)) => TeacherSignal::Cached { train, val },
        None => TeacherSignal::Live(&teacher),
    };

    crate::oom::set_activity("building the distilled student");
    // Distilled and scratch students start from the same weights and see the same batches.
    tch::manual_seed(seed.wrapping_add(1) as i64);
    let distilled = build_model(cfg, &cfg.student.model, [c, h, classes], device)?;
    let hint = match &cfg.distill {
        LossConfig::Fitnets(f) => Some(fitnets_hint(f, &teacher, &distilled, [c, h, h])?),
        _ => None,
    };
    let objective = match (&kd_loss, &hint) {
        (Some(loss), _) => Objective::Distill {
            loss: loss.as_ref(),
            teacher: teacher_signal,
        },
        (None, Some(hint)) => Objective::Hint {
            hint,
            teacher: &teacher,
        },
        (None, None) => unreachable!("a loss is either a logit loss or fitnets"),
    };
    crate::oom::set_activity("training the distilled student");
    let outcome = fit_with(
        &distilled,
        &train,
        &val,
        &objective,
        s,
        "distilled",
        FitHooks {
            progress: Some(&mut bars),
            checkpoints: Some(&phase.checkpoints("distilled", &cfg.student.model)),
            parallel: ranks.parallel,
        },
    )?;
    let (distilled_report, distilled_confusion) = phase.finish(
        "distilled",
        &distilled,
        &cfg.student.model,
        None,
        distill_objective,
        Some(&outcome),
    )?;
    drop(distilled);
    drop(caches);
    drop(teacher);

    tch::manual_seed(seed.wrapping_add(1) as i64);
    crate::oom::set_activity("building the scratch student");
    let scratch = build_model(cfg, &cfg.student.model, [c, h, classes], device)?;
    crate::oom::set_activity("training the scratch student");
    let outcome = fit_with(
        &scratch,
        &train,
        &val,
        &Objective::CrossEntropy,
        s,
        "scratch",
        FitHooks {
            progress: Some(&mut bars),
            checkpoints: Some(&phase.checkpoints("scratch", &cfg.student.model)),
            parallel: ranks.parallel,
        },
    )?;
    let (scratch_report, _) = phase.finish(
        "scratch",
        &scratch,
        &cfg.student.model,
        None,
        cross_entropy(),
        Some(&outcome),
    )?;

    let report = Report {
        name: cfg.name.clone(),
        seed,
        device: device_name(device),
        torch_threads: tch::get_num_threads(),
        precision: cfg.precision.name().into(),
        channels_last: cfg.channels_last,
        train_images: data.train.len(),
        student_train_images: student_train.len(),
        validation_images: data.val.len(),
        test_images: data.test.len(),
        distillation_gain_points: 100.0
            * (distilled_report.test_accuracy - scratch_report.test_accuracy),
        models: vec![teacher_report, distilled_report, scratch_report],
        total_seconds: start.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
        dataset: cfg.data.dataset.name().into(),
        config_file: config_path.display().to_string(),
        kd_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("KD_GIT_COMMIT").into(),
        torch_version: crate::env::torch_version(),
    };
    if writer {
        // Ranks other than 0 trained and evaluated in step with it; rank 0 writes.
        write_atomic(&out.join("metrics.jsonl"), log.metrics_jsonl().as_bytes())?;
        write_atomic(&out.join("metrics.csv"), log.metrics_csv().as_bytes())?;
        write_atomic(&out.join("events.jsonl"), log.events_jsonl().as_bytes())?;
        write_atomic(
            &out.join("report.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        write_atomic(&out.join("report.md"), report.markdown().as_bytes())?;
        write_plots(out, &log, cfg.data.dataset, &distilled_confusion);
    }
    Ok(report)
}

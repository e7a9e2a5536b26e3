//! The first phase of a run: every check of the config against the data, the models, the
//! device and the ranks — before anything trains — then the run directory. A config that
//! cannot run fails here, naming the file and key, with nothing trained and nothing written.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kd_core::{DistillLoss, LogitCache, LossConfig};
use kd_data::ImageDataset;
use kd_models::TorchScriptTeacher;
use tch::Device;

use super::build::build_model;
use super::data::{load_data, RunData};
use super::seeds::{self, Stream};
use super::students::fitnets_hint;
use super::unlabeled::{student_sets, StudentSets};
use super::{Ranks, RunOverrides};
use crate::atomic::write_atomic;
use crate::config::RunConfig;
use crate::env::{device_name, prepare_device};

/// What every later phase starts from.
pub(super) struct Prepared {
    pub data: RunData,
    /// The students' training images: the training split or a seeded subset of it.
    pub student_train: ImageDataset,
    /// The distilled student's: `student_train` and the unlabeled images, if any.
    pub distill_train: ImageDataset,
    /// `[channels, height, classes]` of every model.
    pub shape: [usize; 3],
    pub device: Device,
    /// The logit loss (`None` for FitNets, whose hint is built with the student).
    pub logit_loss: Option<Box<dyn DistillLoss>>,
    /// The resolved config as written to `config.toml`.
    pub resolved: String,
    /// The TorchScript teacher, loaded and checked here (taken by the teacher phase).
    pub torchscript: Option<TorchScriptTeacher>,
}

/// Checks everything, then creates the run directory (rank 0), its config and its log.
pub(super) fn prepare(
    config_path: &Path,
    overrides: &RunOverrides,
    cfg: &RunConfig,
    out: &Path,
    ranks: Ranks,
) -> Result<Prepared> {
    let invalid = || format!("{}: invalid config", config_path.display());
    let resolved = cfg.to_toml()?;
    if overrides.resume.is_some() {
        // Before anything is written: a mismatch leaves the directory as it was.
        crate::resume::check_same_config(out, &resolved)?;
    }
    let data = load_data(cfg)?;
    let [c, h, _] = cfg.data.transform.output_shape(data.train.image_shape());
    let shape = [c, h, data.train.classes()];
    for (key, model) in [
        ("teacher.model", &cfg.teacher.model),
        ("student.model", &cfg.student.model),
    ] {
        model.validate(key, h).with_context(invalid)?;
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
    let logit_loss = match &cfg.distill.loss {
        LossConfig::Fitnets(_) => None,
        logits => Some(logits.build("distill")?),
    };
    if let Some(loss) = &logit_loss {
        loss.check_classes(shape[2]).with_context(invalid)?;
    }
    let torchscript = check_teacher(cfg, config_path, shape, device)?;
    let StudentSets {
        labelled: student_train,
        distill: distill_train,
    } = student_sets(cfg, &data, config_path)?;
    check_ranks(cfg, ranks, &distill_train, &data).with_context(invalid)?;
    let parallel = ranks.parallel.is_some();
    let loss = logit_loss.as_deref();
    check_graph_requests(cfg, loss, &distill_train, shape[2], device, parallel)
        .with_context(invalid)?;
    create_run_dir(overrides, out, &resolved, ranks.writer())?;
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
    if let Some(p) = ranks.parallel {
        tracing::info!(
            "data parallel: rank {} of {}, global batch sizes as configured",
            p.rank(),
            p.world_size()
        );
    }
    Ok(Prepared {
        data,
        student_train,
        distill_train,
        shape,
        device,
        logit_loss,
        resolved,
        torchscript,
    })
}

/// The teacher's checks before anything trains: a TorchScript teacher loaded, fed the data's
/// shape and checked to give its classes (returned); FitNets' hinted layers found, on
/// throw-away models of the run's architectures.
fn check_teacher(
    cfg: &RunConfig,
    config_path: &Path,
    shape: [usize; 3],
    device: Device,
) -> Result<Option<TorchScriptTeacher>> {
    let invalid = || format!("{}: invalid config", config_path.display());
    let [c, h, classes] = shape;
    let torchscript = match &cfg.teacher.torchscript {
        Some(path) => {
            let input = &cfg.teacher.input;
            input.validate("teacher.input", c).with_context(invalid)?;
            let module = kd_models::torchscript::load_checked(path, input, [c, h], classes, device)
                .with_context(invalid)?;
            Some(module)
        }
        None => None,
    };
    if let LossConfig::Fitnets(f) = &cfg.distill.loss {
        if let Some(path) = &cfg.teacher.torchscript {
            bail!(
                "{}: distill.loss = \"fitnets\" hints from a named layer of a kd teacher; the TorchScript teacher {} has none (use a logit loss)",
                config_path.display(),
                path.display()
            );
        }
        seeds::enter(Stream::Prepare, cfg.seed);
        let teacher = build_model(cfg, &cfg.teacher.model.without_pretrained(), shape, device)?;
        let student = build_model(cfg, &cfg.student.model, shape, device)?;
        fitnets_hint(f, &teacher, &student, [c, h, h]).with_context(invalid)?;
    }
    Ok(torchscript)
}

/// With data parallelism: what every fit and the logit cache will check, checked now
/// (a student batch smaller than the number of ranks must not surface after the teacher's
/// hours of training).
fn check_ranks(
    cfg: &RunConfig,
    ranks: Ranks,
    student_train: &ImageDataset,
    data: &RunData,
) -> Result<()> {
    let Some(dp) = ranks.parallel else {
        return Ok(());
    };
    if cfg.teacher.checkpoint.is_none() && cfg.teacher.torchscript.is_none() {
        dp.check_config(&cfg.teacher.train, cfg.precision(), "teacher.train")?;
    }
    dp.check_config(&cfg.student.train, cfg.precision(), "student.train")?;
    // The cached logits are computed a share per rank: every rank needs an image of each set.
    let caches = caches_teacher_logits(cfg);
    let sets = [
        ("distilled student's training", student_train),
        ("validation", &data.val),
    ];
    for (what, images) in sets.into_iter().filter(|_| caches) {
        if images.len() < dp.world_size() {
            anyhow::bail!(
                "{what} images: {} for {} data-parallel ranks: the teacher's logits are cached a share per rank, and every rank needs at least one",
                images.len(),
                dp.world_size()
            );
        }
    }
    Ok(())
}

/// `cuda_graphs = true` that a fit could not honour fails here, before anything trains. The
/// teacher's steps are cross-entropy; the distilled student's are judged by the rule its fit
/// applies ([`kd_core::distiller::steps_capturable`]), with the teacher's logits for
/// `distill_train` (`classes` each), if the run caches them, where
/// [`LogitCache::placement`] will keep them.
fn check_graph_requests(
    cfg: &RunConfig,
    loss: Option<&dyn DistillLoss>,
    distill_train: &ImageDataset,
    classes: usize,
    device: Device,
    parallel: bool,
) -> Result<()> {
    let logits = distill_train.len() * classes;
    let cached_on = caches_teacher_logits(cfg)
        .then(|| LogitCache::placement(logits, cfg.teacher.cache.dtype, device));
    let mixup = cfg.distill.mixup > 0.0;
    let distill = kd_core::distiller::steps_capturable(loss, cached_on, mixup, device);
    let precision = cfg.precision();
    for (key, train, capturable) in [
        ("teacher.train", &cfg.teacher.train, true),
        ("student.train", &cfg.student.train, distill),
    ] {
        kd_train::graphed::check_request(train, device, precision, capturable, parallel, key)?;
    }
    Ok(())
}

/// Whether the run caches the teacher's logits: a logit loss (not FitNets) on batches the
/// cache mode allows (by default, un-augmented ones), unless the teacher must see the
/// student's own batches (`distill.teacher_views = "same"`, mixup).
pub(super) fn caches_teacher_logits(cfg: &RunConfig) -> bool {
    let augmented = cfg.student.train.augment.is_enabled();
    !matches!(cfg.distill.loss, LossConfig::Fitnets(_))
        && !cfg.distill.needs_live_teacher()
        && cfg.teacher.cache.mode.caches(augmented)
}

/// The run directory with its `config.toml` and `train.log` (rank 0); a new run in an old
/// directory first removes the old run's checkpoints, which must never be resumed.
fn create_run_dir(
    overrides: &RunOverrides,
    out: &Path,
    resolved: &str,
    writer: bool,
) -> Result<()> {
    if !writer {
        return Ok(());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the run directory", out.display()))?;
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
    crate::logging::log_to_file(&out.join("train.log"), overrides.resume.is_some())?;
    let checkpoints = out.join("checkpoints");
    if overrides.resume.is_none() && checkpoints.exists() {
        std::fs::remove_dir_all(&checkpoints)
            .with_context(|| format!("{}: cannot remove", checkpoints.display()))?;
    }
    Ok(())
}

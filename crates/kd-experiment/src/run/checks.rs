//! The checks a [`Plan`](super::Plan) makes of the config against the data, the models, the
//! device and the ranks, before anything trains: a config that cannot run fails here, naming
//! the file and key, with nothing trained and nothing written.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kd_core::{DistillLoss, LogitCache};
use kd_data::ImageDataset;
use kd_train::distributed::check_parallel_config;
use tch::Device;

use super::build::build_model;
use super::data::RunData;
use super::hint::feature_loss;
use super::simkd_student::distilled_model;
use crate::config::RunConfig;
use crate::outside_teacher::OutsideTeacher;
use crate::saved_model::ModelInfo;
use crate::seeds::{self, Stream};

/// The teacher's checks before anything trains: a teacher from outside kd loaded, fed the
/// data's shape and checked to give its classes (returned).
pub(super) fn check_teacher(
    cfg: &RunConfig,
    config_path: &Path,
    shape: [usize; 3],
    device: Device,
) -> Result<Option<OutsideTeacher>> {
    let invalid = || format!("{}: invalid config", config_path.display());
    let [c, h, classes] = shape;
    let outside =
        OutsideTeacher::load(&cfg.teacher, [c, h], classes, device).with_context(invalid)?;
    if let Some(path) = &cfg.teacher.checkpoint {
        check_checkpoint(cfg, path, shape).with_context(invalid)?;
    }
    let loss = &cfg.distill.loss;
    if let (true, Some(t)) = (loss.is_feature(), &outside) {
        bail!(
            "{}: distill.loss = \"{}\" reads a named layer of a kd teacher; the {} teacher {} has none (use a logit loss)",
            config_path.display(),
            loss.name(),
            t.format(),
            t.path().display()
        );
    }
    Ok(outside)
}

/// A feature loss's checks before anything trains, on throw-away models of the run's
/// architectures: its layers found, its values and the `images` of the distilled student's
/// training set enough for it (CRD's negatives), mixup refused for a loss with state per
/// image. Returns whether its steps can be captured in a CUDA graph (true for a logit loss).
pub(super) fn check_feature_loss(
    cfg: &RunConfig,
    config_path: &Path,
    shape: [usize; 3],
    images: usize,
    device: Device,
) -> Result<bool> {
    let loss = &cfg.distill.loss;
    if !loss.is_feature() {
        return Ok(true);
    }
    let invalid = || format!("{}: invalid config", config_path.display());
    if let (kd_core::LossConfig::Crd(_), true) = (loss, cfg.distill.mixup > 0.0) {
        bail!(
            "{}: distill.mixup: expected 0 with distill.loss = \"crd\" (its memory banks keep one embedding per training image, which a mixed image is not), got {}",
            config_path.display(),
            cfg.distill.mixup
        );
    }
    let [c, h, _] = shape;
    seeds::enter(Stream::Plan, cfg.seed);
    let teacher = build_model(cfg, &cfg.teacher.model.without_pretrained(), shape, device)?;
    let student = build_model(cfg, &distilled_model(cfg), shape, device).with_context(invalid)?;
    let built = feature_loss(loss, &teacher, &student, [c, h, h], images).with_context(invalid)?;
    Ok(built.capturable())
}

/// A kd model file as the teacher (`teacher.checkpoint`): its metadata's architecture,
/// classes, preprocessing and image shape must be the run's, since it is fed the run's
/// batches as they are (a weights file without kd's metadata is checked when loaded).
fn check_checkpoint(cfg: &RunConfig, path: &Path, [c, h, classes]: [usize; 3]) -> Result<()> {
    let Ok(info) = ModelInfo::read(path) else {
        return Ok(());
    };
    let takes = info.transform.output_shape(info.input_shape);
    let model = cfg.teacher.model.without_pretrained();
    if info.model.without_pretrained() != model {
        bail!(
            "teacher.checkpoint: {} holds a {}, teacher.model is a {} (leave [teacher.model] out to take the file's)",
            path.display(),
            info.model.describe(),
            model.describe()
        );
    }
    if info.classes != classes || takes != [c, h, h] || info.transform != cfg.data.transform {
        bail!(
            "teacher.checkpoint: {} is a model of {} classes trained on {takes:?} images preprocessed by {:?}; this run has {classes} classes of [{c}, {h}, {h}] images preprocessed by {:?} (set data.transform to the file's)",
            path.display(),
            info.classes,
            info.transform,
            cfg.data.transform
        );
    }
    Ok(())
}

/// With data parallelism: what every fit and the logit cache will check, checked now
/// (a student batch smaller than the number of ranks must not surface after the teacher's
/// hours of training).
pub(super) fn check_ranks(
    cfg: &RunConfig,
    world_size: usize,
    student_train: &ImageDataset,
    data: &RunData,
) -> Result<()> {
    if world_size <= 1 {
        return Ok(());
    }
    if let kd_core::LossConfig::Crd(_) = cfg.distill.loss {
        bail!("distill.loss = \"crd\": expected one process (its memory banks hold one embedding per training image, which data-parallel ranks would each update apart), got {world_size} ranks");
    }
    if cfg.teacher.checkpoint.is_none() && !cfg.teacher.is_outside() {
        check_parallel_config(
            world_size,
            &cfg.teacher.train,
            cfg.precision(),
            "teacher.train",
        )?;
    }
    check_parallel_config(
        world_size,
        &cfg.student.train,
        cfg.precision(),
        "student.train",
    )?;
    // The cached logits are computed a share per rank: every rank needs an image of each set.
    let caches = cfg.caches_teacher_logits();
    let sets = [
        ("distilled student's training", student_train),
        ("validation", &data.val),
    ];
    for (what, images) in sets.into_iter().filter(|_| caches) {
        if images.len() < world_size {
            bail!(
                "{what} images: {} for {} data-parallel ranks: the teacher's logits are cached a share per rank, and every rank needs at least one",
                images.len(),
                world_size
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
pub(super) fn check_graph_requests(
    cfg: &RunConfig,
    (loss, features_capturable): (Option<&dyn DistillLoss>, bool),
    distill_train: &ImageDataset,
    classes: usize,
    device: Device,
    parallel: bool,
) -> Result<()> {
    let logits = distill_train.len() * classes;
    let cached_on = cfg
        .caches_teacher_logits()
        .then(|| LogitCache::placement(logits, cfg.teacher.cache.dtype, device));
    let mixup = cfg.distill.mixup > 0.0;
    let distill =
        features_capturable && kd_core::distiller::steps_capturable(loss, cached_on, mixup, device);
    let precision = cfg.precision();
    for (key, train, capturable) in [
        ("teacher.train", &cfg.teacher.train, true),
        ("student.train", &cfg.student.train, distill),
    ] {
        kd_train::graphed::check_request(train, device, precision, capturable, parallel, key)?;
    }
    Ok(())
}

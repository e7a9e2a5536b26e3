//! `kd-cli teach CONFIG --out logits.kdl`: the config's teacher — trained into (or resumed
//! from) the run directory `run` would use, or loaded from its file — computes its logits
//! of the run's images once and writes them as a teacher logits file
//! ([`crate::logits_file`]): the distilled student's training images (unlabeled ones
//! included) and the validation images in the cache dtype, exactly the logits `run` caches,
//! and the test images in float32. `teacher.logits = "logits.kdl"` then makes a run (of
//! the same data, split and seed) learn from them without any teacher.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_core::CacheDtype;

use crate::logits_file::TeacherLogits;
use crate::run::{Plan, RunOverrides, EVAL_BATCH};
use crate::teacher_card::TeacherCard;

/// What `teach` wrote.
#[derive(Debug, Clone)]
pub struct Taught {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The teacher, as the file describes it.
    pub teacher: String,
    /// Training, validation and test images.
    pub images: [usize; 3],
    /// The teacher's test accuracy, from the file's test logits.
    pub test_accuracy: f64,
    /// The teacher's card.
    pub card: Option<TeacherCard>,
}

/// The card of the teacher of the run `config_path` and `overrides` describe (trained into,
/// or resumed from, its run directory, or loaded from its files), with nothing written.
pub fn teacher_card(config_path: &Path, overrides: &RunOverrides) -> Result<TeacherCard> {
    let mut plan = Plan::new(config_path, overrides)?;
    plan.train_teacher()?
        .card
        .context("the teacher phase gives a card")
}

/// Writes the teacher logits of the run `config_path` and `overrides` describe to `out`.
pub fn teach(config_path: &Path, overrides: &RunOverrides, out: &Path) -> Result<Taught> {
    if out.file_name().is_none() {
        bail!("--out: expected a file path, got {}", out.display());
    }
    let mut plan = Plan::new(config_path, overrides)?;
    let cfg = plan.config().clone();
    if cfg.teacher.logits.is_some() {
        bail!(
            "{}: teacher.logits: this config reads its teacher's logits from a file already",
            config_path.display()
        );
    }
    if !cfg.caches_teacher_logits() {
        bail!(
            "{}: the distilled student needs the teacher live (augmented batches, distill.teacher_views = \"same\", mixup, a feature loss (fitnets, at, rkd, crd, simkd) or teacher.cache.mode = \"never\"): its logits cannot be written once",
            config_path.display()
        );
    }
    let report = plan.train_teacher()?;
    let teacher = plan.saved_teacher()?.context("a teacher that runs")?;
    let (train, val) = plan
        .teacher_caches(Some(&teacher))?
        .context("the config caches teacher logits")?;
    let batches = (&cfg.data.transform, EVAL_BATCH, plan.device());
    let test =
        kd_train::teacher_logit_cache(&teacher, &plan.data.test, batches, CacheDtype::F32, None)?;
    let description = match &report.pretrained {
        Some(origin) => format!("{} ({origin})", report.architecture),
        None => format!(
            "{} trained in {}",
            report.architecture,
            plan.run_dir().display()
        ),
    };
    let file = TeacherLogits {
        logits: [("train", train), ("validation", val), ("test", test)]
            .into_iter()
            .map(|(name, cache)| (name.to_string(), cache.logits().shallow_clone()))
            .collect(),
        teacher: description,
        dtype: format!("{:?}", cfg.teacher.cache.dtype).to_lowercase(),
    };
    let splits = [plan.distill_images(), &plan.data.val, &plan.data.test];
    let bytes = file.write(out, splits)?;
    let (test_accuracy, _) = file.test_score(&plan.data.test);
    Ok(Taught {
        path: out.to_path_buf(),
        bytes,
        teacher: file.teacher,
        images: splits.map(|d| d.len()),
        test_accuracy,
        card: report.card,
    })
}

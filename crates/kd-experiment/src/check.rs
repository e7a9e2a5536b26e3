//! `kd-cli check CONFIG [--set KEY=VALUE ...]`: the [`Plan`] `kd-cli run` would run — the
//! resolved config, the data it finds, both models' summaries (a TorchScript teacher loaded
//! and probed on the data, as `run` does), the device, the run directory — and warnings
//! for resolutions that would surprise the config's author (an override that drops keys of
//! the file, a data directory of another dataset). Nothing is trained or written.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::env::device_name;
use crate::run::{Plan, RunOverrides, TeacherSource};

/// The text `kd-cli check` prints; an error when `kd-cli run` would fail before training.
pub fn check(config_path: &Path, overrides: &RunOverrides) -> Result<String> {
    let plan = Plan::new(config_path, overrides)?;
    let warnings = plan.warnings();
    let mut out = String::new();
    let sets: Vec<String> = overrides
        .sets
        .iter()
        .map(|s| format!("--set {s}"))
        .collect();
    writeln!(
        out,
        "# {}{}{}: resolved config (every default filled in)",
        config_path.display(),
        if sets.is_empty() { "" } else { " " },
        sets.join(" ")
    )?;
    out += plan.config_toml();
    out += "\n";
    out += &data_section(&plan)?;
    out += "\n";
    out += &crate::summary::plan_summaries(&plan)?;
    out += &plan_section(&plan)?;
    if warnings.is_empty() {
        out += "warnings: none\n";
    } else {
        for w in warnings {
            writeln!(out, "warning: {w}")?;
        }
    }
    writeln!(
        out,
        "ok: `kd-cli run {}` would start training ({} warning{})",
        config_path.display(),
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" }
    )?;
    Ok(out)
}

/// What the config's data directory holds and how the run splits it.
fn data_section(plan: &Plan) -> Result<String> {
    let cfg = plan.config();
    let data = &plan.data;
    let [c, h, w] = data.train.image_shape();
    let [ic, ih, iw] = plan.input_shape();
    let students = match plan.unlabeled_images() {
        0 => plan.student_images().to_string(),
        u => format!(
            "{} labelled (the distilled one also on {u} unlabeled, taught by the teacher alone)",
            plan.student_images()
        ),
    };
    let mut out = String::new();
    writeln!(
        out,
        "data: {} in {}: {} training, {} validation ({}), {} test images of {c}x{h}x{w}, {} classes",
        cfg.data.dataset.name(),
        cfg.data.dir().display(),
        plan.train_images(),
        plan.validation_images(),
        if cfg.data.validation_holdout == 0 {
            "the test set, as the seed notebook does"
        } else {
            "held out of the training images"
        },
        plan.test_images(),
        plan.classes()
    )?;
    writeln!(
        out,
        "model input: {ic}x{ih}x{iw}; the teacher trains on {} images, the students on {students}",
        plan.train_images()
    )?;
    Ok(out)
}

/// The device, the teacher's source, the loss, and where the run would write.
fn plan_section(plan: &Plan) -> Result<String> {
    let cfg = plan.config();
    let mut out = String::new();
    writeln!(out, "device: {}", device_name(plan.device()))?;
    let t = &cfg.teacher.train;
    match plan.teacher_source() {
        TeacherSource::Trained { epochs } => writeln!(
            out,
            "teacher: trained for up to {epochs} epochs (batch {}, Adam {:.2e})",
            t.batch_size, t.lr
        )?,
        source => writeln!(out, "teacher: {source}")?,
    }
    let logits = match (plan.caches_teacher_logits(), cfg.distill.mixup) {
        (true, _) => " (the teacher's logits cached once)".to_string(),
        (false, a) if a > 0.0 => {
            format!(" (mixup {a}, the teacher live on the same mixed batches)")
        }
        (false, _) => " (the teacher live on the same batches)".into(),
    };
    writeln!(
        out,
        "students: distilled with loss {:?}{logits} and from scratch, up to {} epochs each (batch {}, Adam {:.2e})",
        cfg.distill.loss.name(),
        cfg.student.train.epochs,
        cfg.student.train.batch_size,
        cfg.student.train.lr
    )?;
    let dir = plan.run_dir();
    let exists = if dir.join("config.toml").is_file() {
        " (exists: its files would be replaced)"
    } else {
        ""
    };
    writeln!(out, "run directory: {}{exists}", dir.display()).context("cannot format the plan")?;
    Ok(out)
}

//! `kd-cli check CONFIG [--set KEY=VALUE ...]`: everything `kd-cli run` decides before it
//! trains — the resolved config, the data it finds, both models' summaries, the device, the
//! run directory — and warnings for resolutions that would surprise the config's author
//! (an override that drops keys of the file, a data directory of another dataset). Nothing
//! is trained or written.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::RunConfig;
use crate::env::device_name;
use crate::run::{load_data, resolve_config, run_dir, student_sets, RunOverrides};

/// The text `kd-cli check` prints; an error when `kd-cli run` would fail before training.
pub fn check(config_path: &Path, overrides: &RunOverrides) -> Result<String> {
    let (cfg, warnings) = resolve_config(config_path, overrides)?;
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
    out += &cfg.to_toml()?;
    out += "\n";
    out += &data_section(&cfg, config_path)?;
    out += "\n";
    out += &crate::summary::summaries(&cfg, config_path)?;
    out += &plan_section(&cfg, overrides)?;
    if warnings.is_empty() {
        out += "warnings: none\n";
    } else {
        for w in &warnings {
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
fn data_section(cfg: &RunConfig, config_path: &Path) -> Result<String> {
    let data = load_data(cfg)?;
    let [c, h, w] = data.train.image_shape();
    let [ic, ih, iw] = cfg.data.transform.output_shape([c, h, w]);
    let sets = student_sets(cfg, &data, config_path)?;
    let unlabeled = sets.distill.len() - sets.distill.labelled_len();
    let students = match unlabeled {
        0 => sets.labelled.len().to_string(),
        u => format!(
            "{} labelled (the distilled one also on {u} unlabeled, taught by the teacher alone)",
            sets.labelled.len()
        ),
    };
    let mut out = String::new();
    writeln!(
        out,
        "data: {} in {}: {} training, {} validation ({}), {} test images of {c}x{h}x{w}, {} classes",
        cfg.data.dataset.name(),
        cfg.data.dir().display(),
        data.train.len(),
        data.val.len(),
        if cfg.data.validation_holdout == 0 {
            "the test set, as the seed notebook does"
        } else {
            "held out of the training images"
        },
        data.test.len(),
        data.train.classes()
    )?;
    writeln!(
        out,
        "model input: {ic}x{ih}x{iw}; the teacher trains on {} images, the students on {students}",
        data.train.len()
    )?;
    Ok(out)
}

/// The device, the teacher's source, the loss, and where the run would write.
fn plan_section(cfg: &RunConfig, overrides: &RunOverrides) -> Result<String> {
    let device = cfg.device.resolve("device")?;
    let mut out = String::new();
    writeln!(out, "device: {}", device_name(device))?;
    match &cfg.teacher.checkpoint {
        Some(ckpt) => writeln!(out, "teacher: loaded from {}", ckpt.display())?,
        None => writeln!(
            out,
            "teacher: trained for up to {} epochs (batch {}, Adam {:.2e})",
            cfg.teacher.train.epochs, cfg.teacher.train.batch_size, cfg.teacher.train.lr
        )?,
    }
    writeln!(
        out,
        "students: distilled with loss {:?}{} and from scratch, up to {} epochs each (batch {}, Adam {:.2e})",
        cfg.distill.loss.name(),
        match (cfg.distill.needs_live_teacher(), cfg.distill.mixup) {
            (false, _) => String::new(),
            (true, 0.0) => " (the teacher live on the same batches)".into(),
            (true, a) => format!(" (mixup {a}, the teacher live on the same mixed batches)"),
        },
        cfg.student.train.epochs,
        cfg.student.train.batch_size,
        cfg.student.train.lr
    )?;
    let dir = run_dir(cfg, overrides)?;
    let exists = if dir.join("config.toml").is_file() {
        " (exists: its files would be replaced)"
    } else {
        ""
    };
    writeln!(out, "run directory: {}{exists}", dir.display()).context("cannot format the plan")?;
    Ok(out)
}

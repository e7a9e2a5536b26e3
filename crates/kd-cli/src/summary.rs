//! `kd-cli summary CONFIG [--set KEY=VALUE]`: the Keras-style summary (`model.summary()`) of the config's
//! teacher and student, for the input shape its dataset and transform produce. Nothing is
//! trained and no data is read; pretrained weights are not loaded (the summary says whether
//! the configured file is present).

use std::path::Path;

use anyhow::{Context, Result};
use kd_models::{Model, Summary};
use tch::Device;

use crate::config::{Override, RunConfig};

/// The printed summaries of the teacher and the student of `config_path`, with `sets`
/// applied.
pub fn summary(config_path: &Path, sets: &[Override]) -> Result<String> {
    let cfg = RunConfig::load_with(config_path, sets)?;
    summaries(&cfg, config_path)
}

/// The printed summaries of the teacher and the student of a resolved config
/// (`config_path` names it in errors).
pub fn summaries(cfg: &RunConfig, config_path: &Path) -> Result<String> {
    let shape = cfg.data.input_shape();
    let [c, h, _] = shape;
    let classes = cfg.data.classes()?;
    let mut out = String::new();
    for (role, key, model) in [
        ("teacher", "teacher.model", &cfg.teacher.model),
        ("student", "student.model", &cfg.student.model),
    ] {
        model
            .validate(key, h)
            .with_context(|| format!("{}: invalid config", config_path.display()))?;
        let note = match model.pretrained() {
            Some(p) if p.is_file() => format!("pretrained features from {}", p.display()),
            Some(p) => format!(
                "pretrained features from {} (missing: run `cargo xtask fetch-weights vgg19`)",
                p.display()
            ),
            None => "random initialization".into(),
        };
        let built = Model::new(&model.without_pretrained(), c, h, classes, Device::Cpu)?;
        let s = Summary::new(role, &built, shape);
        out += &format!("{s}{}, {note}\n\n", model.describe());
    }
    Ok(out)
}

//! `kd-cli summary CONFIG [--set KEY=VALUE]`: the Keras-style summary (`model.summary()`) of
//! the config's teacher and student, for the input shape its dataset and transform produce.
//! Nothing is trained and no data is read; pretrained weights are not loaded (the summary
//! says whether the configured file is present). A TorchScript teacher
//! (`teacher.torchscript`) is loaded and described by its file and parameters: its layers
//! are not kd's to list, and `teacher.model` does not apply to it.

use std::path::Path;

use anyhow::{Context, Result};
use kd_models::{Model, ModelConfig, Summary, TorchScriptTeacher};
use tch::Device;

use crate::config::{Override, RunConfig};
use crate::outside_teacher::OutsideTeacher;
use crate::run::Plan;

/// The printed summaries of the teacher and the student of `config_path`, with `sets`
/// applied.
pub fn summary(config_path: &Path, sets: &[Override]) -> Result<String> {
    let cfg = RunConfig::load_with(config_path, sets)?;
    summaries(&cfg, config_path)
}

/// The printed summaries of the teacher and the student of a resolved config
/// (`config_path` names it in errors); a TorchScript teacher is loaded on the CPU.
pub fn summaries(cfg: &RunConfig, config_path: &Path) -> Result<String> {
    let invalid = || format!("{}: invalid config", config_path.display());
    let [c, _, _] = cfg.data.input_shape();
    let teacher = match &cfg.teacher.torchscript {
        Some(path) => {
            cfg.teacher
                .input
                .validate("teacher.input", c)
                .with_context(invalid)?;
            let module = TorchScriptTeacher::load(path, &cfg.teacher.input, c, Device::Cpu)
                .with_context(invalid)?;
            let files = path.display().to_string();
            outside_summary("TorchScript module", &files, module.parameters() as usize)
        }
        None if cfg.teacher.is_outside() => {
            let [c, h, _] = cfg.data.input_shape();
            let classes = cfg.data.classes().with_context(invalid)?;
            let t = OutsideTeacher::load(&cfg.teacher, [c, h], classes, Device::Cpu)
                .with_context(invalid)?
                .expect("an ONNX teacher or an ensemble");
            summary_of(&t)
        }
        None => model_summary(
            "teacher",
            "teacher.model",
            &cfg.teacher.model,
            cfg,
            config_path,
        )?,
    };
    let student = model_summary(
        "student",
        "student.model",
        &cfg.student.model,
        cfg,
        config_path,
    )?;
    Ok(teacher + &student)
}

/// The summaries of a [`Plan`]'s teacher and student: its teacher from outside kd as
/// loaded and probed on the run's images.
pub fn plan_summaries(plan: &Plan) -> Result<String> {
    let (cfg, path) = (plan.config(), plan.config_path.as_path());
    let teacher = match &plan.outside {
        Some(t) => summary_of(t),
        _ => model_summary("teacher", "teacher.model", &cfg.teacher.model, cfg, path)?,
    };
    let student = model_summary("student", "student.model", &cfg.student.model, cfg, path)?;
    Ok(teacher + &student)
}

/// The summary of a teacher from outside kd: its file (an ensemble's files and weights)
/// and parameters.
fn summary_of(t: &OutsideTeacher) -> String {
    let files: Vec<String> = match t.files() {
        [(path, _)] => vec![path.display().to_string()],
        files => files
            .iter()
            .map(|(p, w)| format!("{} x{w:.3}", p.display()))
            .collect(),
    };
    outside_summary(t.describe(), &files.join(", "), t.parameters())
}

/// The summary of a teacher from outside kd (`what`: its format): its files and parameters.
fn outside_summary(what: &str, files: &str, parameters: usize) -> String {
    format!(
        "Model: \"teacher\"\n{what} {files}: {parameters} parameters (frozen: used as loaded, never trained)\n\n"
    )
}

/// The Keras-style summary of `model` as `role` (`key` names its config section).
fn model_summary(
    role: &str,
    key: &str,
    model: &ModelConfig,
    cfg: &RunConfig,
    config_path: &Path,
) -> Result<String> {
    let shape = cfg.data.input_shape();
    let [c, h, _] = shape;
    let classes = cfg.data.classes()?;
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
    Ok(format!("{s}{}, {note}\n\n", model.describe()))
}

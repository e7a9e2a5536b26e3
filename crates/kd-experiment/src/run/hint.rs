//! The FitNets hint of a run (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"):
//! the teacher and student layers `distill.teacher_layer`/`student_layer` name, probed for
//! their channels, joined by a regressor. the plan builds one to check the layers before
//! anything trains; the students phase builds the one that trains.

use anyhow::{bail, Result};
use kd_core::{FitNetsConfig, FitNetsHint};
use kd_models::Model;

/// The FitNets hint between the configured layers, its regressor in the student's
/// variable store (under `aux.`, so it trains with the student but is not saved with it).
pub(super) fn fitnets_hint(
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

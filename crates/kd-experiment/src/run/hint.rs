//! The feature loss of a run (a FitNets hint, attention transfer, relational KD, CRD, SimKD): the
//! teacher and student layers `distill.teacher_layer`/`student_layer` name, probed for their
//! channels (FitNets joins them by a regressor). The plan builds one to check the layers
//! before anything trains; the students phase builds the one that trains.

use anyhow::{bail, Result};
use kd_core::{FeatureLoss, LossConfig};
use kd_models::Model;

/// The feature loss `config` names between its layers, for a training set of `images`
/// images, its state (FitNets' regressor, CRD's heads and banks) in the student's variable
/// store (under `aux.`, so it trains and is checkpointed with the student but is not saved
/// with it).
pub(super) fn feature_loss(
    config: &LossConfig,
    teacher: &Model,
    student: &Model,
    [c, h, w]: [usize; 3],
    images: usize,
) -> Result<Box<dyn FeatureLoss>> {
    let [student_layer, teacher_layer] = config
        .feature_layers()
        .expect("a feature loss names its layers");
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
    let cs = channels(student, "student_layer", student_layer)?;
    let ct = channels(teacher, "teacher_layer", teacher_layer)?;
    let path = student.var_store().root() / "aux" / "hint";
    Ok(config.build_feature("distill", &path, [cs, ct], images)?)
}

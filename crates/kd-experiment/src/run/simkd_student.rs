//! The distilled student's architecture: `[student.model]`, or with `distill.loss = "simkd"`
//! a SimKD student built on it (Chen et al., CVPR 2022, [`kd_models::simkd`]): its layers up
//! to `distill.student_layer`, a projector, and the teacher's layers after
//! `distill.teacher_layer`, whose weights are the trained teacher's.

use anyhow::{Context, Result};
use kd_core::LossConfig;
use kd_models::{Model, ModelConfig, SimKdStudentConfig};

use crate::config::RunConfig;

/// The architecture the distilled student is built from (the scratch student's is always
/// `[student.model]`).
pub(crate) fn distilled_model(cfg: &RunConfig) -> ModelConfig {
    match &cfg.distill.loss {
        LossConfig::Simkd(simkd) => ModelConfig::SimKd(SimKdStudentConfig {
            student: Box::new(cfg.student.model.clone()),
            student_layer: simkd.student_layer.clone(),
            teacher: Box::new(cfg.teacher.model.without_pretrained()),
            teacher_layer: simkd.teacher_layer.clone(),
            factor: simkd.factor,
        }),
        _ => cfg.student.model.clone(),
    }
}

/// Gives a SimKD student the trained `teacher`'s head (nothing for another student).
pub(super) fn adopt_head(student: &Model, teacher: Option<&Model>) -> Result<()> {
    if let Some(teacher) = teacher {
        student
            .adopt_teacher_head(teacher)
            .context("the SimKD student reuses the teacher's head")?;
    }
    Ok(())
}

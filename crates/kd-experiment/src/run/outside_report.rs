//! What the report says of a teacher from outside the run: its origin (each file with its
//! SHA-256, and an ensemble's weights and combination) and, for an ensemble, each member's
//! own float32 test accuracy beside the ensemble's.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::context::RunContext;
use crate::outside_teacher::OutsideTeacher;
use crate::report::MemberScore;

/// `TorchScript teacher.pt (sha256 …)`, or `ensemble (probability) of a.onnx (sha256 …)
/// x0.5, b.pt (sha256 …) x0.5`, then what kd does to meet it (`, fed the images …`, `,
/// teacher classes 1000 -> 10 (10 used)`).
pub(super) fn origin(ctx: &RunContext, teacher: &OutsideTeacher) -> Result<String> {
    let files = teacher
        .files()
        .iter()
        .map(|(path, weight)| {
            let digest = kd_models::torchscript::file_digest(path)?;
            let named = format!("{} (sha256 {digest})", path.display());
            Ok(match teacher.members().is_empty() {
                true => named,
                false => format!("{named} x{weight:.3}"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let named = match teacher.members().is_empty() {
        true => format!("{} {}", teacher.format(), files[0]),
        false => {
            let combine = format!("{:?}", ctx.cfg.teacher.combine).to_lowercase();
            format!("ensemble ({combine}) of {}", files.join(", "))
        }
    };
    let bridge = teacher.bridge().and_then(|b| b.describe(ctx.plan.shape[1]));
    let adapted: String = bridge
        .map(|b| format!("fed the images {b}"))
        .into_iter()
        .chain(teacher.class_notes().iter().cloned())
        .map(|note| format!(", {note}"))
        .collect();
    Ok(format!("{named}{adapted}"))
}

/// Each ensemble member's test accuracy alone (float32), logged, with its test logits;
/// empty for one teacher.
pub(super) fn member_scores(
    ctx: &RunContext,
    teacher: &OutsideTeacher,
) -> Result<(Vec<MemberScore>, Vec<Tensor>)> {
    let labels = super::card::test_labels(ctx);
    let mut scores = Vec::new();
    let mut logits = Vec::new();
    for ((model, weight), (path, _)) in teacher.members().iter().zip(teacher.files()) {
        let z = super::card::test_logits(ctx, model)?;
        let right = z.argmax(-1, false).eq_tensor(&labels).to_kind(Kind::Double);
        let accuracy = right.mean(Kind::Double).double_value(&[]);
        tracing::info!(
            "ensemble member {} (weight {weight:.3}): test accuracy {:.2}%",
            path.display(),
            100.0 * accuracy
        );
        scores.push(MemberScore {
            file: path.display().to_string(),
            weight: *weight,
            test_accuracy: accuracy,
        });
        logits.push(z);
    }
    Ok((scores, logits))
}

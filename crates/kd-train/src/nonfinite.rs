//! Non-finite values in training: a NaN or an infinity in the loss or in a gradient is caught
//! in the step it appears in, before the optimizer spreads it into the weights (what Keras'
//! `TerminateOnNaN` does for the loss, extended to gradients). The check costs one host
//! synchronisation per step.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// What a fit does when a step's loss or gradients are not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// End the fit with an error naming the step and the last good checkpoint.
    #[default]
    Stop,
    /// Leave the weights as they were, count the batch as skipped, and go on.
    SkipBatch,
}

/// Whether every defined tensor of `tensors` holds only finite values (one host sync).
pub(crate) fn all_finite<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> bool {
    tch::no_grad(|| {
        let mut all: Option<Tensor> = None;
        for t in tensors.into_iter().filter(|t| t.defined()) {
            let ok = t.isfinite().all();
            all = Some(match all {
                Some(acc) => acc.logical_and(&ok),
                None => ok,
            });
        }
        all.is_none_or(|t| t.to_kind(Kind::Bool).int64_value(&[]) != 0)
    })
}

/// What is not finite after a step's backward pass: `None` if all is well, else `loss
/// (NaN)` or `gradient of <name>`. `loss` is `None` where only gradients are checked.
pub(crate) fn find_nonfinite(
    loss: Option<&Tensor>,
    names: &[String],
    params: &[Tensor],
) -> Option<String> {
    let grads: Vec<Tensor> = params.iter().map(Tensor::grad).collect();
    if all_finite(loss.into_iter().chain(&grads)) {
        return None;
    }
    // The failure path: find the culprit (cost no longer matters).
    if let Some(value) = loss.map(|l| l.double_value(&[])).filter(|v| !v.is_finite()) {
        return Some(format!("loss ({value})"));
    }
    names
        .iter()
        .zip(&grads)
        .find(|(_, g)| !all_finite([*g]))
        .map(|(name, _)| format!("gradient of {name}"))
        .or_else(|| Some("gradient".into()))
}

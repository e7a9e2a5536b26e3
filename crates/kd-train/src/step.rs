//! One optimizer step on one batch's loss: back-propagation (weighted and summed over ranks
//! by [`Replicas`]), then Adam — plainly, or through float16 loss scaling, where a step with
//! an overflowing gradient is skipped by the scaler's own rules (PyTorch's `GradScaler`).
//! What the step found not finite is returned, not acted on: the non-finite policy is the
//! caller's, applied in one place ([`crate::epoch`]).

use tch::Tensor;

use crate::error::Result;
use crate::loss_scale::LossScaler;
use crate::optimizer::Adam;
use crate::replicas::Replicas;

/// What became of a step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stepped {
    /// The weights changed.
    Taken,
    /// float16 loss scaling skipped it (an overflow; the scale was halved).
    SkippedByScaler,
    /// The loss or a gradient is not finite (named); the weights did not change.
    NonFinite(String),
}

/// Steps `opt` on `loss` (`None`: this rank has no images of the batch) for the parameters
/// `trainable`; `share` is this rank's fraction of the global batch.
pub(crate) fn step(
    opt: &mut Adam,
    trainable: &mut [Tensor],
    scaler: Option<&mut LossScaler>,
    loss: Option<&Tensor>,
    share: f64,
    replicas: Replicas,
) -> Result<Stepped> {
    if let (Some(scaler), Some(loss)) = (scaler, loss) {
        let taken = scaler.backward_step(trainable, loss, || opt.step())?;
        return Ok(if taken {
            Stepped::Taken
        } else {
            Stepped::SkippedByScaler
        });
    }
    Ok(match replicas.backward(opt, trainable, loss, share)? {
        None => {
            opt.step()?;
            Stepped::Taken
        }
        Some(what) => Stepped::NonFinite(what),
    })
}

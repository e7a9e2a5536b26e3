//! Where a fit's work happens: in this process alone, or data-parallel over the ranks of a
//! c10d process group ([`DataParallel`]). Every collective the loop makes is here, and every
//! rank makes them in this order — a collective added anywhere else, or skipped on one rank,
//! would leave the ranks waiting for each other:
//!
//! 1. start: [`Replicas::agree_on_start`] (rank 0's resume point), then
//!    [`Replicas::broadcast_weights`] (everyone starts from rank 0's weights);
//! 2. every step: [`Replicas::backward`] sums the gradients (and a non-finite-loss flag);
//! 3. every epoch: [`Replicas::sum_epoch`] (training metrics), [`Replicas::agree_on_validation`]
//!    and [`Replicas::agree_on_decisions`] (rank 0's numbers and callbacks decide);
//! 4. end: [`Replicas::broadcast_weights`] (every rank leaves with the model rank 0 saves).
//!
//! A single process makes no collective and returns its own values.

use kd_data::Batch;
use kd_models::{Network, Precision};
use tch::Tensor;

use crate::config::TrainConfig;
use crate::distributed::{DataParallel, DistError};
use crate::error::{Result, ResumePoint, TrainError};
use crate::evaluate::Evaluation;
use crate::metrics::EpochSums;
use crate::nonfinite::find_nonfinite;
use crate::optimizer::Adam;

/// One process, or data parallelism over a process group.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Replicas<'a> {
    Single,
    DataParallel(DataParallel<'a>),
}

impl<'a> Replicas<'a> {
    pub(crate) fn new(parallel: Option<DataParallel<'a>>) -> Self {
        parallel.map_or(Self::Single, Self::DataParallel)
    }

    /// Checks what data parallelism cannot do ([`DataParallel::check_config`]).
    pub(crate) fn check(
        &self,
        config: &TrainConfig,
        precision: Precision,
        phase: &str,
    ) -> Result<()> {
        match self {
            Self::Single => Ok(()),
            Self::DataParallel(dp) => dp.check_config(config, precision, phase),
        }
    }

    /// Every rank must resume from the same point (the same checkpoint, read by each), or
    /// their collectives would no longer pair up.
    pub(crate) fn agree_on_start(&self, mine: ResumePoint, lr: f64, phase: &str) -> Result<()> {
        let Self::DataParallel(dp) = self else {
            return Ok(());
        };
        let values = [
            mine.epoch as f64,
            mine.step as f64,
            f64::from(u8::from(mine.complete)),
            lr,
        ];
        let rank0 = dp.from_rank0(&values)?;
        if rank0 != values {
            return Err(TrainError::RanksDisagree {
                phase: phase.into(),
                rank: dp.rank(),
                mine,
                rank0: ResumePoint {
                    epoch: rank0[0] as usize,
                    step: rank0[1] as usize,
                    complete: rank0[2] != 0.0,
                },
            });
        }
        Ok(())
    }

    /// Makes every rank's weights (parameters and batch-norm buffers) rank 0's.
    pub(crate) fn broadcast_weights(&self, model: &dyn Network) -> Result<()> {
        if let Self::DataParallel(dp) = self {
            dp.broadcast_model(model)?;
        }
        Ok(())
    }

    /// This rank's share of a global batch, and the share's fraction of it.
    pub(crate) fn shard(&self, batch: &Batch) -> (Batch, f64) {
        let Self::DataParallel(dp) = self else {
            return (batch.slice(0..batch.len()), 1.0);
        };
        let global = batch.len();
        let mine = dp.shard(global);
        let share = mine.len() as f64 / global.max(1) as f64;
        (batch.slice(mine), share)
    }

    /// Back-propagates `loss` (`None`: this rank has no images in the batch) into the
    /// gradients of `trainable`; with data parallelism the rank's mean loss is weighted by
    /// its `share` and the gradients summed over ranks, so that every rank holds the global
    /// batch's mean gradient. Says what is not finite, if anything; takes no step.
    pub(crate) fn backward(
        &self,
        opt: &mut Adam,
        trainable: &[Tensor],
        loss: Option<&Tensor>,
        share: f64,
    ) -> Result<Option<String>> {
        let Self::DataParallel(dp) = self else {
            return Ok(loss.and_then(|loss| {
                opt.backward(loss);
                find_nonfinite(Some(loss), opt.names(), trainable)
            }));
        };
        let local_flag = match loss {
            Some(loss) => {
                opt.backward(&(loss * share));
                f64::from(!loss.double_value(&[]).is_finite())
            }
            None => {
                // No images here: a zero gradient to the sum.
                opt.zero_grad();
                for p in trainable {
                    (p.sum(tch::Kind::Float) * 0.0).backward();
                }
                0.0
            }
        };
        // The flag rides with the gradients, so every rank sees every rank's bad loss.
        let flags = dp.all_reduce_gradients(trainable, local_flag)?;
        Ok(if flags > 0.0 {
            Some("loss (on at least one rank)".into())
        } else {
            find_nonfinite(None, opt.names(), trainable)
        })
    }

    /// The epoch's training sums over every rank.
    pub(crate) fn sum_epoch(&self, sums: EpochSums) -> Result<EpochSums> {
        match self {
            Self::Single => Ok(sums),
            Self::DataParallel(dp) => Ok(sums_over_ranks(sums, dp)?),
        }
    }

    /// Every rank validates the same weights; rank 0's numbers drive every decision.
    pub(crate) fn agree_on_validation(&self, mut v: Evaluation) -> Result<Evaluation> {
        if let Self::DataParallel(dp) = self {
            let agreed = dp.from_rank0(&[v.loss, v.accuracy, v.cross_entropy])?;
            (v.loss, v.accuracy, v.cross_entropy) = (agreed[0], agreed[1], agreed[2]);
        }
        Ok(v)
    }

    /// Rank 0 decides whether to stop and which rate to use next; all ranks follow.
    pub(crate) fn agree_on_decisions(
        &self,
        stop: bool,
        lr: f64,
        phase: &str,
    ) -> Result<(bool, f64)> {
        let Self::DataParallel(dp) = self else {
            return Ok((stop, lr));
        };
        let decided = dp.from_rank0(&[f64::from(u8::from(stop)), lr])?;
        if (decided[0] != 0.0) != stop || decided[1] != lr {
            tracing::warn!("{phase}: callbacks disagreed with rank 0; following rank 0");
        }
        Ok((decided[0] != 0.0, decided[1]))
    }
}

/// The sums of one epoch over every rank of `dp` (every rank must have seen the same loss
/// terms).
fn sums_over_ranks(
    sums: EpochSums,
    dp: &DataParallel,
) -> std::result::Result<EpochSums, DistError> {
    let n = sums.images as f64;
    let mut values = vec![sums.loss * n, sums.hits as f64, n, sums.labelled as f64];
    values.extend(sums.parts.iter().map(|(_, v)| v * n));
    let total = dp.sum(&values)?;
    let images = total[2].round() as usize;
    let per_image = |v: f64| v / images.max(1) as f64;
    Ok(EpochSums {
        loss: per_image(total[0]),
        hits: total[1].round() as i64,
        images,
        labelled: total[3].round() as usize,
        parts: sums
            .parts
            .into_iter()
            .zip(&total[4..])
            .map(|((k, _), v)| (k, per_image(*v)))
            .collect(),
    })
}

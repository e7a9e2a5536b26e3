//! A population's validation pass: every member's logits from one fused forward pass per
//! batch, each member's loss and accuracy summed as [`crate::evaluate`] sums a solo model's.
//! Several grouped members read each evaluation batch in slices of the training batch size
//! (members computing as alone read it whole, as their solo fits do): K
//! members' activations for a whole evaluation batch (1,000 images) are K times a solo
//! model's, and libtorch's memory-bound kernels and the allocator slow down several times
//! over at that size (measured: 12 quickstart students validate 5,000 images in 6.6 s by
//! 1,000, 1.9 s by 32).

use std::time::Instant;

use kd_core::Split;
use kd_models::population::{Layout, StudentPopulation};

use super::{teacher, Slot};
use crate::batches::BatchSource;
use crate::error::Result;
use crate::evaluate::{Evaluation, PassSums};

/// The evaluation of each of the `active` members (in order) on every batch of `val`.
pub(super) fn validate(
    population: &StudentPopulation,
    slots: &[Slot],
    active: &[usize],
    val: &dyn BatchSource,
) -> Result<Vec<Evaluation>> {
    let start = Instant::now();
    let leaders = teacher::leaders(slots, active);
    let mut sums: Vec<PassSums> = active.iter().map(|_| PassSums::default()).collect();
    let _no_grad = tch::no_grad_guard();
    let slice = if active.len() == 1 || population.layout() == Layout::Members {
        usize::MAX
    } else {
        slots[active[0]].fit.config.batch_size
    };
    val.for_each_batch(0, &mut |whole| {
        for start in (0..whole.len()).step_by(slice) {
            let batch = whole.slice(start..whole.len().min(start.saturating_add(slice)));
            let logits = population.forward_t(&batch.images);
            let teachers = teacher::logits(slots, active, &leaders, &batch, Split::Validation);
            for (j, &i) in active.iter().enumerate() {
                let member = logits.get(j as i64);
                let teacher = teachers[leaders[j]].as_ref();
                let out = slots[i].objective.loss_of(&member, teacher, &batch.labels);
                sums[j].add(&member, &batch.labels, &out);
            }
        }
        Ok(())
    })?;
    Ok(sums.into_iter().map(|s| s.evaluation(start)).collect())
}

//! A population's validation pass: every member's logits from one fused forward pass per
//! batch, each member's loss and accuracy summed as [`crate::evaluate`] sums a solo model's.

use std::time::Instant;

use kd_core::Split;
use kd_models::population::StudentPopulation;

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
    val.for_each_batch(0, &mut |batch| {
        let logits = population.forward_t(&batch.images);
        let teachers = teacher::logits(slots, active, &leaders, &batch, Split::Validation);
        for (j, &i) in active.iter().enumerate() {
            let member = logits.get(j as i64);
            let teacher = teachers[leaders[j]].as_ref();
            let out = slots[i].objective.loss_of(&member, teacher, &batch.labels);
            sums[j].add(&member, &batch.labels, &out);
        }
        Ok(())
    })?;
    Ok(sums.into_iter().map(|s| s.evaluation(start)).collect())
}

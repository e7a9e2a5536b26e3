//! The teacher's logits of a batch, once for every member that learns from the same teacher
//! (the same cached logits or the same live model): members are grouped under the first
//! member of their teacher.

use kd_core::Split;
use kd_data::Batch;
use tch::Tensor;

use super::Slot;

/// For each of the `active` members, the position (in `active`) of the first member with
/// its teacher.
pub(super) fn leaders(slots: &[Slot], active: &[usize]) -> Vec<usize> {
    let objective = |j: usize| &slots[active[j]].objective;
    (0..active.len())
        .map(|j| {
            (0..j)
                .find(|&l| objective(l).same_teacher(objective(j)))
                .unwrap_or(j)
        })
        .collect()
}

/// The teacher's logits of `batch` for each leader (`None` elsewhere, and for members
/// without a teacher).
pub(super) fn logits(
    slots: &[Slot],
    active: &[usize],
    leaders: &[usize],
    batch: &Batch,
    split: Split,
) -> Vec<Option<Tensor>> {
    (0..active.len())
        .map(|j| {
            (leaders[j] == j)
                .then(|| slots[active[j]].objective.teacher_logits(batch, split))
                .flatten()
        })
        .collect()
}

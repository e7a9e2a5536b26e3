//! Which of a rung's units train together as fused populations: consecutive trials of one
//! seed whose students can share batches (equal fusion keys, from
//! [`crate::run::Plan::fusion_key`] and the students' images), at most `max` at a time.
//! Everything else trains alone.

use super::store::Unit;

/// `units` (in a shard's order) split into batches to run in order: several positions are
/// one population, one position a unit alone. `keys[i]` is unit i's fusion key (`None`:
/// alone).
pub(crate) fn populations(units: &[Unit], keys: &[Option<String>], max: usize) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        let joins = |batch: &Vec<usize>| {
            let j = batch[0];
            batch.len() < max
                && keys[i].is_some()
                && keys[j] == keys[i]
                && units[j].seed() == unit.seed()
                && matches!(unit, Unit::Trial { .. })
                && matches!(units[j], Unit::Trial { .. })
        };
        match batches.last_mut().filter(|b| joins(b)) {
            Some(batch) => batch.push(i),
            None => batches.push(vec![i]),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(trial: usize, seed: u64) -> Unit {
        Unit::Trial {
            rung: 0,
            trial,
            seed,
        }
    }

    #[test]
    fn a_seeds_trials_of_one_key_fuse_up_to_the_limit() {
        let units = [
            Unit::Scratch { seed: 1 },
            trial(0, 1),
            trial(1, 1),
            trial(2, 1),
            trial(3, 1),
            trial(4, 1),
            trial(0, 2),
            trial(1, 2),
        ];
        let key = |k: &str| Some(k.to_string());
        let keys = [
            key("a"),
            key("a"),
            key("a"),
            None,
            key("b"),
            key("b"),
            key("b"),
            key("b"),
        ];
        let batches = populations(&units, &keys, 3);
        // Scratch alone; trials 0-1 fuse; trial 2 cannot; 3-4 fuse; seed 2 starts anew.
        assert_eq!(
            batches,
            [vec![0], vec![1, 2], vec![3], vec![4, 5], vec![6, 7]]
        );
        let capped = populations(&units[1..3], &keys[1..3], 1);
        assert_eq!(capped, [vec![0], vec![1]]);
    }
}

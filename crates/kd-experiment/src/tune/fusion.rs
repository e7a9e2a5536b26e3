//! Which of a rung's units train together as fused populations: consecutive trials of one
//! seed whose students can share batches (equal fusion keys, from
//! [`crate::run::fusion_key`]), at most `max` at a time — and no more than an even share of
//! the seed's trials per shard, so that `n` shards (or workers) all get populations to
//! train. Everything else trains alone.

use super::store::Unit;

/// A rung's `units` split into batches to run in order, as positions: several are one
/// population, one a unit alone. `keys[i]` is unit i's fusion key (`None`: alone); a
/// population holds at most `max` members and ⌈trials of its seed / `shards`⌉.
pub(crate) fn populations(
    units: &[Unit],
    keys: &[Option<String>],
    max: usize,
    shards: usize,
) -> Vec<Vec<usize>> {
    let trials_of = |seed: u64| {
        let trial = |u: &&Unit| matches!(u, Unit::Trial { .. }) && u.seed() == seed;
        units.iter().filter(trial).count()
    };
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        let cap = max.min(trials_of(unit.seed()).div_ceil(shards.max(1)));
        let joins = |batch: &Vec<usize>| {
            let j = batch[0];
            batch.len() < cap
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
        let batches = populations(&units, &keys, 3, 1);
        // Scratch alone; trials 0-1 fuse; trial 2 cannot; 3-4 fuse; seed 2 starts anew.
        assert_eq!(
            batches,
            [vec![0], vec![1, 2], vec![3], vec![4, 5], vec![6, 7]]
        );
        let capped = populations(&units[1..3], &keys[1..3], 1, 1);
        assert_eq!(capped, [vec![0], vec![1]]);
    }

    #[test]
    fn shards_each_get_a_share_of_a_seeds_trials() {
        let units: Vec<Unit> = (0..12).map(|t| trial(t, 1)).collect();
        let keys = vec![Some("k".to_string()); 12];
        let sizes = |shards| -> Vec<usize> {
            let batches = populations(&units, &keys, 12, shards);
            batches.iter().map(Vec::len).collect()
        };
        assert_eq!(sizes(1), [12]);
        assert_eq!(sizes(2), [6, 6]);
        assert_eq!(sizes(4), [3, 3, 3, 3]);
        assert_eq!(sizes(5), [3, 3, 3, 3]);
    }
}

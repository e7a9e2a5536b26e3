//! Which units of work a tune has, which rung each configuration reaches, and which shard
//! does what. Everything here is a function of the tune and the results in its folder, so
//! every worker and shard — and a `--report` later — computes the same answer:
//!
//! - rung 1 holds every configuration; rung r+1 the top ⌈n/η⌉ of rung r by the mean over
//!   seeds of their best validation accuracy ([`super::halving`]);
//! - a rung's units are its configurations × the seeds, in (seed, configuration) order; the
//!   last rung's come after the scratch students (one per seed), which train as long;
//! - shard i of n does the units at positions i, i + n, i + 2n … of each rung, and trains
//!   the teachers of the seeds at positions i, i + n, … (before any unit, so that no shard
//!   waits on one that waits on it).

use anyhow::Result;

use super::halving::{keep, rank, Standing};
use super::space::Tune;
use super::store::{TuneDir, Unit, UnitResult};

/// This process's share of a tune: shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// How many shards share the tune.
    pub count: usize,
}

impl Shard {
    /// The whole tune in one process.
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// Parses `i/n` (1-based, as Slurm array tasks count from 1: `1/4` … `4/4`).
    ///
    /// ```
    /// use kd_experiment::tune::schedule::Shard;
    ///
    /// assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 1, count: 4 });
    /// assert!(Shard::parse("5/4").unwrap_err().to_string().contains("between 1 and 4"));
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let parsed = text.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((i, n)) if n >= 1 && (1..=n).contains(&i) => Ok(Self {
                index: i - 1,
                count: n,
            }),
            Some((i, n)) => anyhow::bail!(
                "--shard {text}: expected a shard between 1 and {n} (i/n, counting from 1), got {i}"
            ),
            None => anyhow::bail!("--shard {text}: expected i/n, e.g. 1/4"),
        }
    }

    /// Shard `index` of this shard's `workers` workers, as a shard of the whole tune.
    pub fn worker(self, index: usize, workers: usize) -> Self {
        Self {
            index: self.index * workers + index,
            count: self.count * workers,
        }
    }

    /// Whether the item at `position` of a list is this shard's.
    pub fn owns(self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// A rung's standings, once every unit of it is done (`None` until then).
pub fn standings(tune: &Tune, dir: &TuneDir, rung: usize) -> Result<Option<Vec<Standing>>> {
    let Some(members) = members(tune, dir, rung)? else {
        return Ok(None);
    };
    let mut scores = Vec::with_capacity(members.len());
    for trial in members {
        let mut values = Vec::with_capacity(tune.section.seeds.len());
        for &seed in &tune.section.seeds {
            let unit = Unit::Trial { rung, trial, seed };
            match dir.result(unit)? {
                Some(result) => values.push(result.val_accuracy.unwrap_or(f64::NAN)),
                None => return Ok(None),
            }
        }
        scores.push((trial, values));
    }
    Ok(Some(rank(&scores, true)))
}

/// The configurations in `rung` (`None` while the rung before is not done).
pub fn members(tune: &Tune, dir: &TuneDir, rung: usize) -> Result<Option<Vec<usize>>> {
    if rung == 0 {
        return Ok(Some((0..tune.trials.len()).collect()));
    }
    let Some(ranked) = standings(tune, dir, rung - 1)? else {
        return Ok(None);
    };
    let mut kept = keep(&ranked, tune.section.eta);
    kept.sort_unstable();
    Ok(Some(kept))
}

/// The units of `rung`, given its configurations: (seed, configuration) order, the scratch
/// students first in the last rung.
pub fn units(tune: &Tune, rung: usize, members: &[usize]) -> Vec<Unit> {
    let seeds = &tune.section.seeds;
    let last = rung + 1 == tune.section.rungs.len();
    let scratch = seeds
        .iter()
        .filter(|_| last)
        .map(|&seed| Unit::Scratch { seed });
    let trials = seeds.iter().flat_map(|&seed| {
        members
            .iter()
            .map(move |&trial| Unit::Trial { rung, trial, seed })
    });
    scratch.chain(trials).collect()
}

/// Epochs a unit trains (its share of the tune's work, for the estimate of time left).
pub fn unit_epochs(tune: &Tune, unit: Unit) -> usize {
    let rungs = &tune.section.rungs;
    match unit {
        Unit::Trial { rung: 0, .. } => rungs[0],
        Unit::Trial { rung, .. } => rungs[rung] - rungs[rung - 1],
        Unit::Scratch { .. } => tune.final_epochs(),
    }
}

/// Student epochs of the whole tune (every unit's, by the rung sizes halving gives).
pub fn total_epochs(tune: &Tune) -> usize {
    let t = &tune.section;
    let sizes = super::halving::rung_sizes(tune.trials.len(), t.rungs.len(), t.eta);
    let seeds = t.seeds.len();
    let trials: usize = sizes
        .iter()
        .enumerate()
        .map(|(rung, &n)| {
            let unit = Unit::Trial {
                rung,
                trial: 0,
                seed: 0,
            };
            n * seeds * unit_epochs(tune, unit)
        })
        .sum();
    trials + seeds * tune.final_epochs()
}

/// Units of the whole tune: every rung's configurations at every seed, and a scratch
/// student per seed.
pub fn total_units(tune: &Tune) -> usize {
    let t = &tune.section;
    let sizes = super::halving::rung_sizes(tune.trials.len(), t.rungs.len(), t.eta);
    (sizes.iter().sum::<usize>() + 1) * t.seeds.len()
}

/// Every result in the folder so far, with its unit (for progress and the report).
pub fn done(tune: &Tune, dir: &TuneDir) -> Result<Vec<(Unit, UnitResult)>> {
    let mut found = Vec::new();
    let seeds = &tune.section.seeds;
    for &seed in seeds {
        if let Some(r) = dir.result(Unit::Scratch { seed })? {
            found.push((Unit::Scratch { seed }, r));
        }
    }
    for rung in 0..tune.section.rungs.len() {
        for trial in 0..tune.trials.len() {
            for &seed in seeds {
                let unit = Unit::Trial { rung, trial, seed };
                if let Some(r) = dir.result(unit)? {
                    found.push((unit, r));
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tune() -> Tune {
        let text = "[tune]\nseeds = [1, 2]\nrungs = [1, 3, 9]\n\
                    space = { \"distill.alpha\" = [0.1, 0.3, 0.5, 0.7, 0.9] }\n";
        Tune::parse(text, Path::new("t.toml")).unwrap()
    }

    fn result(val: Option<f64>) -> UnitResult {
        UnitResult {
            trial: Some(0),
            seed: 1,
            epochs: 1,
            val_accuracy: val,
            complete: false,
            failed: val.is_none().then(|| "loss (NaN)".into()),
            seconds: 0.0,
            tested: None,
        }
    }

    #[test]
    fn a_rung_opens_when_the_one_before_is_done_and_keeps_its_best_by_the_seed_mean() {
        let (t, folder) = (tune(), tempfile::tempdir().unwrap());
        let dir = TuneDir::new(folder.path());
        assert_eq!(members(&t, &dir, 1).unwrap(), None);
        // Configuration 3 is best on the mean (0.85) though not on seed 1; 4 failed on seed 2.
        let vals = [
            (0.80, 0.80),
            (0.70, 0.70),
            (0.82, 0.83),
            (0.78, 0.92),
            (0.99, -1.0),
        ];
        for (trial, (a, b)) in vals.iter().enumerate() {
            for (seed, v) in [(1, *a), (2, *b)] {
                let r = result((v >= 0.0).then_some(v));
                dir.save_result(
                    Unit::Trial {
                        rung: 0,
                        trial,
                        seed,
                    },
                    &r,
                )
                .unwrap();
            }
        }
        // ⌈5/3⌉ = 2 go on, listed in the space's order.
        assert_eq!(members(&t, &dir, 1).unwrap(), Some(vec![2, 3]));
        assert_eq!(members(&t, &dir, 2).unwrap(), None);
        let units = units(&t, 2, &[3]);
        assert_eq!(units[0], Unit::Scratch { seed: 1 });
        assert_eq!(units.len(), 4);
        assert_eq!(
            (unit_epochs(&t, units[3]), unit_epochs(&t, units[0])),
            (6, 9)
        );
        // 5·2·1 + 2·2·2 + 1·2·6 trial epochs and 2·9 scratch epochs.
        assert_eq!(total_epochs(&t), 10 + 8 + 12 + 18);
        assert_eq!(total_units(&t), (5 + 2 + 1 + 1) * 2);
        assert_eq!(done(&t, &dir).unwrap().len(), 10);
    }

    #[test]
    fn shards_share_every_unit_once() {
        let all: Vec<usize> = (0..11).collect();
        let shards: Vec<Shard> = (0..2)
            .flat_map(|i| (0..3).map(move |w| Shard { index: i, count: 2 }.worker(w, 3)))
            .collect();
        for position in all {
            assert_eq!(shards.iter().filter(|s| s.owns(position)).count(), 1);
        }
        assert!(Shard::parse("0/2").is_err() && Shard::parse("x").is_err());
    }
}

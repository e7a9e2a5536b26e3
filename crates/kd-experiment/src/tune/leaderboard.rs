//! A tune's report, from what its folder holds (finished or not, one shard's or all): for
//! every configuration and rung the validation accuracy, mean ± std over the seeds; for the
//! finalists (the last rung's configurations) the test accuracy and the paired gain over the
//! scratch student with its 95 % t-interval and the seeds ahead; the winner against the
//! runner-up on the test set. Rows go by the furthest rung reached, then by the ranking
//! there. Nothing timed is in it, so a tune resumed or sharded gives the same report.

use serde::Serialize;

use anyhow::Result;

use super::paired::{paired_difference, PairedDifference};
use super::schedule::{members, standings};
use super::space::Tune;
use super::store::{Tested, TuneDir, Unit, UnitResult};
use crate::student_t::{mean_interval, MeanInterval};

/// Values over seeds, in percent.
#[derive(Debug, Clone, Serialize)]
pub struct OverSeeds {
    /// One per seed that has a value, in the tune's seed order.
    pub values: Vec<f64>,
    /// Seeds that failed, with their reasons.
    pub failed: Vec<(u64, String)>,
    /// Mean of `values`.
    pub mean: Option<f64>,
    /// Sample std of `values` (two or more).
    pub std: Option<f64>,
}

impl OverSeeds {
    fn of(values: Vec<f64>, failed: Vec<(u64, String)>) -> Self {
        let m: Option<MeanInterval> = (!values.is_empty()).then(|| mean_interval(&values));
        Self {
            mean: m.map(|m| m.mean),
            std: m.and_then(|m| m.std),
            values,
            failed,
        }
    }

    /// `90.42 ± 0.12`, `90.42` (one seed), `failed`, or `90.42 (2 of 3 seeds)`.
    pub fn cell(&self, seeds: usize) -> String {
        let Some(mean) = self.mean else {
            return if self.failed.is_empty() {
                String::new()
            } else {
                "failed".into()
            };
        };
        let std = self.std.map_or(String::new(), |s| format!(" ± {s:.2}"));
        let partial = if self.values.len() < seeds {
            format!(" ({} of {seeds} seeds)", self.values.len())
        } else {
            String::new()
        };
        format!("{mean:.2}{std}{partial}")
    }
}

/// A paired difference, for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    /// Mean difference, points.
    pub mean: f64,
    /// 95 % interval (two or more seeds).
    pub interval: Option<(f64, f64)>,
    /// Seeds where the first is ahead.
    pub ahead: usize,
    /// Seeds compared.
    pub seeds: usize,
    /// Whether the interval lies clear of 0.
    pub distinguishable: bool,
    /// The comparison in words.
    pub text: String,
}

impl Paired {
    fn of(d: PairedDifference) -> Self {
        Self {
            mean: d.difference.mean,
            interval: d.difference.interval,
            ahead: d.ahead,
            seeds: d.seeds,
            distinguishable: d.distinguishable(),
            text: d.text("points"),
        }
    }
}

/// One configuration's line.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Its index in the space.
    pub trial: usize,
    /// Its overrides, `key=value …`.
    pub label: String,
    /// Validation accuracy (%) at each rung it reached.
    pub rungs: Vec<OverSeeds>,
    /// Test accuracy (%), for a finalist.
    pub test: Option<OverSeeds>,
    /// Its test accuracy minus the scratch student's, seed by seed.
    pub gain_over_scratch: Option<Paired>,
    /// Its test accuracy minus the baseline configuration's (`tune.baseline`), seed by
    /// seed; none for the baseline itself.
    pub gain_over_baseline: Option<Paired>,
    /// Test results per seed (latency and size for the Pareto plot).
    #[serde(skip)]
    pub tested: Vec<Tested>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Leaderboard {
    /// The tune's name (the base config's).
    pub name: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Epochs by the end of each rung.
    pub rungs: Vec<usize>,
    /// The reduction factor.
    pub eta: usize,
    /// Configurations in the space.
    pub configurations: usize,
    /// Every configuration, best first.
    pub rows: Vec<Row>,
    /// The scratch student's test accuracy (%).
    pub scratch: OverSeeds,
    /// The teacher's test accuracy (%).
    pub teacher: OverSeeds,
    /// The winner minus the runner-up on the test set (two finalists or more).
    pub winner_vs_runner_up: Option<Paired>,
    /// The configuration the finalists are also compared with (`tune.baseline`).
    pub baseline: Option<usize>,
    /// Whether every unit of the tune is done.
    pub complete: bool,
    /// Scratch students' test results per seed (for the Pareto plot).
    #[serde(skip)]
    pub scratch_tested: Vec<Tested>,
}

/// Reads the report of `tune` from `dir`.
pub fn leaderboard(tune: &Tune, dir: &TuneDir) -> Result<Leaderboard> {
    let seeds = tune.section.seeds.clone();
    let order = rung_orders(tune, dir)?;
    let mut keyed = Vec::with_capacity(tune.trials.len());
    for trial in 0..tune.trials.len() {
        keyed.push(row(tune, dir, trial, &order)?);
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.trial.cmp(&b.1.trial)));
    let mut rows: Vec<Row> = keyed.into_iter().map(|(_, r)| r).collect();
    let scratch = results(dir, &seeds, |seed| Unit::Scratch { seed })?;
    if let Some(base) = per_seed_test(&scratch, seeds.len()) {
        for row in &mut rows {
            let values = row.test.as_ref().map_or(&[][..], |t| &t.values[..]);
            if values.len() == seeds.len() {
                row.gain_over_scratch = Some(Paired::of(paired_difference(values, &base)));
            }
        }
    }
    if let Some(b) = tune.section.baseline {
        compare_with_baseline(&mut rows, b, seeds.len());
    }
    let finalists: Vec<&[f64]> = rows
        .iter()
        .filter_map(|r| r.test.as_ref().map(|t| &t.values[..]))
        .filter(|v| v.len() == seeds.len())
        .collect();
    let winner_vs_runner_up = match finalists.as_slice() {
        [a, b, ..] => Some(Paired::of(paired_difference(a, b))),
        _ => None,
    };
    let mut teachers = Vec::new();
    for &seed in &seeds {
        teachers.extend(dir.teacher(seed)?.map(|r| 100.0 * r.test_accuracy));
    }
    let rungs = tune.section.rungs.len();
    let complete = members(tune, dir, rungs)?.is_some() && scratch.len() == seeds.len();
    Ok(Leaderboard {
        name: tune.base.name.clone(),
        seeds,
        rungs: tune.section.rungs.clone(),
        eta: tune.section.eta,
        configurations: tune.trials.len(),
        rows,
        scratch: test_accuracy(&scratch),
        teacher: OverSeeds::of(teachers, Vec::new()),
        winner_vs_runner_up,
        baseline: tune.section.baseline,
        complete,
        scratch_tested: scratch
            .iter()
            .filter_map(|(_, r)| r.tested.clone())
            .collect(),
    })
}

/// Each finalist's test accuracy minus that of configuration `baseline`, if it was tested
/// at all `seeds` seeds.
fn compare_with_baseline(rows: &mut [Row], baseline: usize, seeds: usize) {
    let tested = |r: &Row| {
        r.test
            .as_ref()
            .map(|t| t.values.clone())
            .filter(|v| v.len() == seeds)
    };
    let Some(base) = rows.iter().find(|r| r.trial == baseline).and_then(tested) else {
        return;
    };
    for row in rows.iter_mut().filter(|r| r.trial != baseline) {
        if let Some(values) = tested(row) {
            row.gain_over_baseline = Some(Paired::of(paired_difference(&values, &base)));
        }
    }
}

/// Configuration `trial`'s row, and its sort key: its place in the furthest finished rung's
/// ranking first, then in each rung's before (`usize::MAX` where it is not ranked).
fn row(
    tune: &Tune,
    dir: &TuneDir,
    trial: usize,
    order: &[Vec<usize>],
) -> Result<(Vec<usize>, Row)> {
    let seeds = &tune.section.seeds;
    let mut cells = Vec::new();
    for rung in 0..tune.section.rungs.len() {
        let results = results(dir, seeds, |seed| Unit::Trial { rung, trial, seed })?;
        if results.is_empty() {
            break;
        }
        cells.push(results);
    }
    let key = order
        .iter()
        .map(|o| o.iter().position(|&x| x == trial).unwrap_or(usize::MAX))
        .rev()
        .collect();
    let last = cells
        .last()
        .filter(|_| cells.len() == tune.section.rungs.len());
    let tested = last.map_or_else(Vec::new, |r| {
        r.iter().filter_map(|(_, r)| r.tested.clone()).collect()
    });
    let row = Row {
        trial,
        label: tune.trials[trial].label(),
        rungs: cells.iter().map(|c| validation(c)).collect(),
        test: last.map(|c| test_accuracy(c)),
        gain_over_scratch: None,
        gain_over_baseline: None,
        tested,
    };
    Ok((key, row))
}

/// Each finished rung's ranking (configuration indices, best first).
fn rung_orders(tune: &Tune, dir: &TuneDir) -> Result<Vec<Vec<usize>>> {
    let mut orders = Vec::new();
    for rung in 0..tune.section.rungs.len() {
        match standings(tune, dir, rung)? {
            Some(ranked) => orders.push(ranked.iter().map(|s| s.trial).collect()),
            None => break,
        }
    }
    Ok(orders)
}

/// The results of a unit at each seed that has one.
fn results(
    dir: &TuneDir,
    seeds: &[u64],
    unit: impl Fn(u64) -> Unit,
) -> Result<Vec<(u64, UnitResult)>> {
    let mut found = Vec::new();
    for &seed in seeds {
        if let Some(r) = dir.result(unit(seed))? {
            found.push((seed, r));
        }
    }
    Ok(found)
}

fn failures(results: &[(u64, UnitResult)]) -> Vec<(u64, String)> {
    results
        .iter()
        .filter_map(|(s, r)| r.failed.clone().map(|f| (*s, f)))
        .collect()
}

fn validation(results: &[(u64, UnitResult)]) -> OverSeeds {
    let values = results
        .iter()
        .filter_map(|(_, r)| r.val_accuracy.map(|v| 100.0 * v))
        .collect();
    OverSeeds::of(values, failures(results))
}

fn test_accuracy(results: &[(u64, UnitResult)]) -> OverSeeds {
    let values = results
        .iter()
        .filter_map(|(_, r)| r.tested.as_ref().map(|t| 100.0 * t.accuracy))
        .collect();
    OverSeeds::of(values, failures(results))
}

/// Test accuracies (%) in seed order, when every seed has one.
fn per_seed_test(results: &[(u64, UnitResult)], seeds: usize) -> Option<Vec<f64>> {
    let values: Vec<f64> = results
        .iter()
        .filter_map(|(_, r)| r.tested.as_ref().map(|t| 100.0 * t.accuracy))
        .collect();
    (values.len() == seeds).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finalist's row with test accuracies `test` (or a row that stopped earlier: empty).
    fn row(trial: usize, test: &[f64]) -> Row {
        Row {
            trial,
            label: format!("#{trial}"),
            rungs: Vec::new(),
            test: (!test.is_empty()).then(|| OverSeeds::of(test.to_vec(), Vec::new())),
            gain_over_scratch: None,
            gain_over_baseline: None,
            tested: Vec::new(),
        }
    }

    #[test]
    fn finalists_are_paired_with_the_baseline_seed_by_seed() {
        let mut rows = vec![
            row(2, &[91.0, 90.0, 92.5]),
            row(0, &[90.0, 90.5, 91.0]),
            row(1, &[]),
            row(3, &[89.0, 90.0]),
        ];
        compare_with_baseline(&mut rows, 0, 3);
        let gain = rows[0].gain_over_baseline.as_ref().unwrap();
        // (1.0 - 0.5 + 1.5) / 3, ahead on seeds 1 and 3.
        assert!((gain.mean - 2.0 / 3.0).abs() < 1e-12, "{}", gain.mean);
        assert_eq!((gain.ahead, gain.seeds), (2, 3));
        assert!(rows[1].gain_over_baseline.is_none(), "not against itself");
        assert!(rows[2].gain_over_baseline.is_none(), "not a finalist");
        assert!(
            rows[3].gain_over_baseline.is_none(),
            "tested at 2 of 3 seeds"
        );
        // A baseline that is not a finalist gives no comparison.
        let mut rows = vec![row(2, &[91.0, 90.0, 92.5]), row(0, &[])];
        compare_with_baseline(&mut rows, 0, 3);
        assert!(rows[0].gain_over_baseline.is_none());
    }
}

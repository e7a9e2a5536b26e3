//! Successive halving (Jamieson & Talwalkar 2016, as Optuna's `SuccessiveHalvingPruner` and
//! Ray Tune's ASHA run it): after each rung the configurations are ranked by their mean
//! validation metric over the seeds, and the top ⌈n/η⌉ train on to the next rung. A
//! configuration with a failed seed (a non-finite metric, or none) ranks after every one
//! that finished; ties go to the configuration earlier in the space, so a ranking never
//! depends on the order results arrive in.

use std::cmp::Ordering;

use crate::student_t::{mean_interval, MeanInterval};

/// How many of `n` configurations go on past a rung: ⌈n/η⌉, at least one.
pub fn survivors(n: usize, eta: usize) -> usize {
    n.div_ceil(eta.max(1)).max(1)
}

/// The configurations in each of `rungs` rungs when `configs` start: `[n, ⌈n/η⌉, …]`.
///
/// ```
/// use kd_experiment::tune::halving::rung_sizes;
///
/// assert_eq!(rung_sizes(12, 3, 3), [12, 4, 2]);
/// assert_eq!(rung_sizes(27, 4, 3), [27, 9, 3, 1]);
/// assert_eq!(rung_sizes(1, 3, 3), [1, 1, 1]);
/// ```
pub fn rung_sizes(configs: usize, rungs: usize, eta: usize) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(rungs);
    let mut n = configs;
    for _ in 0..rungs {
        sizes.push(n);
        n = survivors(n, eta);
    }
    sizes
}

/// One configuration's standing at a rung.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// The configuration's index in the space.
    pub trial: usize,
    /// Its metric over the seeds (mean, sample std, 95 % interval); `None` if a seed failed.
    pub metric: Option<MeanInterval>,
}

/// Ranks configurations, best first, by the mean over seeds of their validation metric
/// (`scores`: a configuration's index and one value per seed; `maximize` for an accuracy,
/// not for a loss). A configuration with a non-finite value or no value at all comes last.
///
/// ```
/// use kd_experiment::tune::halving::{keep, rank};
///
/// let scores = [
///     (0, vec![0.80, 0.82]),
///     (1, vec![0.85, 0.83]),
///     (2, vec![f64::NAN, 0.99]), // a seed failed
///     (3, vec![0.81, 0.81]),
/// ];
/// let ranked = rank(&scores, true);
/// let order: Vec<usize> = ranked.iter().map(|s| s.trial).collect();
/// assert_eq!(order, [1, 0, 3, 2]);
/// assert_eq!(keep(&ranked, 3), [1, 0]);
/// ```
pub fn rank(scores: &[(usize, Vec<f64>)], maximize: bool) -> Vec<Standing> {
    let mut standings: Vec<Standing> = scores
        .iter()
        .map(|(trial, values)| {
            let finished = !values.is_empty() && values.iter().all(|v| v.is_finite());
            Standing {
                trial: *trial,
                metric: finished.then(|| mean_interval(values)),
            }
        })
        .collect();
    standings.sort_by(|a, b| {
        let by_metric = match (&a.metric, &b.metric) {
            (Some(x), Some(y)) if maximize => y.mean.total_cmp(&x.mean),
            (Some(x), Some(y)) => x.mean.total_cmp(&y.mean),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_metric.then(a.trial.cmp(&b.trial))
    });
    standings
}

/// The configurations that go on from a rung ranked as `ranked`: the top ⌈n/η⌉ that
/// finished (a failed one never goes on).
pub fn keep(ranked: &[Standing], eta: usize) -> Vec<usize> {
    ranked
        .iter()
        .filter(|s| s.metric.is_some())
        .take(survivors(ranked.len(), eta))
        .map(|s| s.trial)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_ranks_lowest_first_and_ties_go_to_the_earlier_configuration() {
        let scores = [
            (4, vec![0.6, 0.6]),
            (2, vec![0.6, 0.6]),
            (9, vec![0.3, 0.4]),
        ];
        let ranked = rank(&scores, false);
        let order: Vec<usize> = ranked.iter().map(|s| s.trial).collect();
        assert_eq!(order, [9, 2, 4], "0.35 < 0.6 = 0.6, the tie by index");
        let m = ranked[0].metric.unwrap();
        assert!((m.mean - 0.35).abs() < 1e-12);
        // Sample std of 0.3 and 0.4: sqrt(2 * 0.05^2 / 1) = sqrt(0.005).
        assert!((m.std.unwrap() - 0.005f64.sqrt()).abs() < 1e-12);
        assert_eq!(keep(&ranked, 2), [9, 2]);
        // The order results arrive in does not matter.
        let mut reversed = scores.to_vec();
        reversed.reverse();
        assert_eq!(rank(&reversed, false), ranked);
    }

    #[test]
    fn failed_configurations_never_go_on_and_one_always_does() {
        let scores = [(0, vec![f64::NAN]), (1, vec![]), (2, vec![0.1])];
        let ranked = rank(&scores, true);
        assert_eq!(ranked[0].trial, 2);
        assert_eq!(keep(&ranked, 3), [2]);
        assert_eq!(keep(&rank(&scores[..2], true), 3), Vec::<usize>::new());
        assert_eq!(
            (survivors(1, 3), survivors(4, 3), survivors(9, 3)),
            (1, 2, 3)
        );
    }
}

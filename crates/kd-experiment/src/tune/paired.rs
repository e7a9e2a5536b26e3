//! Paired differences over seeds: two configurations (or a configuration and the scratch
//! student) measured on the same seeds — same data order, same initial weights — compared
//! seed by seed, so that the seed-to-seed noise they share cancels. The difference's mean,
//! its 95 % Student-t interval and the count of seeds where the first is ahead; a difference
//! whose interval covers 0 is "not distinguishable" on these seeds.

use crate::student_t::{mean_interval, MeanInterval};

/// `a - b`, seed by seed, summarized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    /// Mean, sample std and 95 % interval of the per-seed differences (no interval for one
    /// seed).
    pub difference: MeanInterval,
    /// Seeds where `a` is above `b`.
    pub ahead: usize,
    /// Seeds compared.
    pub seeds: usize,
}

impl PairedDifference {
    /// Whether the interval lies clear of 0 (false for a single seed, which has none).
    pub fn distinguishable(&self) -> bool {
        self.difference
            .interval
            .is_some_and(|(low, high)| low > 0.0 || high < 0.0)
    }

    /// The comparison in words, values in `unit` (e.g. `points`): `+1.20 points, 95% CI
    /// [+0.40, +2.00], ahead on 3 of 3 seeds`, ending in `: not distinguishable` when the
    /// interval covers 0.
    pub fn text(&self, unit: &str) -> String {
        let m = &self.difference;
        let interval = match m.interval {
            Some((low, high)) => format!(", 95% CI [{low:+.2}, {high:+.2}]"),
            None => " (one seed: no interval)".into(),
        };
        let verdict = if self.distinguishable() {
            ""
        } else {
            ": not distinguishable"
        };
        format!(
            "{:+.2} {unit}{interval}, ahead on {} of {} seeds{verdict}",
            m.mean, self.ahead, self.seeds
        )
    }
}

/// Compares `a` with `b`, paired by position (one value per seed, in the same seed order).
///
/// ```
/// use kd_experiment::tune::paired::paired_difference;
///
/// // Test accuracies (points) of the winner and the runner-up on seeds 1, 2, 3.
/// let winner = [90.4, 90.1, 90.9];
/// let runner_up = [90.2, 90.3, 90.5];
/// let d = paired_difference(&winner, &runner_up);
/// assert_eq!((d.ahead, d.seeds), (2, 3));
/// assert!(!d.distinguishable());
/// assert!(d.text("points").ends_with("ahead on 2 of 3 seeds: not distinguishable"));
///
/// let scratch = [84.3, 84.0, 84.6];
/// let gain = paired_difference(&winner, &scratch);
/// assert!(gain.distinguishable());
/// assert!(gain.text("points").starts_with("+6.17 points, 95% CI [+5.88, +6.45]"), "{}", gain.text("points"));
/// ```
///
/// # Panics
/// If `a` and `b` differ in length or are empty: a comparison is of the same seeds.
pub fn paired_difference(a: &[f64], b: &[f64]) -> PairedDifference {
    assert!(
        a.len() == b.len() && !a.is_empty(),
        "paired values of the same seeds, at least one ({} and {})",
        a.len(),
        b.len()
    );
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    PairedDifference {
        difference: mean_interval(&differences),
        ahead: differences.iter().filter(|d| **d > 0.0).count(),
        seeds: differences.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_decides_and_one_seed_decides_nothing() {
        // Differences 1, 2, 3, 4, 5: the interval worked by hand in `student_t`.
        let d = paired_difference(&[2.0, 4.0, 6.0, 8.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(d.distinguishable());
        assert_eq!(
            d.text("points"),
            "+3.00 points, 95% CI [+1.04, +4.96], ahead on 5 of 5 seeds"
        );
        let behind = paired_difference(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(behind.distinguishable(), "clear of 0 below it, too");
        assert_eq!(behind.ahead, 0);
        let one = paired_difference(&[91.0], &[90.0]);
        assert!(!one.distinguishable());
        assert_eq!(
            one.text("points"),
            "+1.00 points (one seed: no interval), ahead on 1 of 1 seeds: not distinguishable"
        );
    }
}

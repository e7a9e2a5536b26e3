//! The 95 % confidence interval of a mean from a small sample: Student's t distribution
//! ("Student" 1908, "The probable error of a mean", Biometrika 6). For `n` paired
//! differences `d`, the interval is `mean(d) ± t(0.975, n - 1) · sd(d) / sqrt(n)`.

/// `t(0.975, df)` for `df` = 1 to 30 (the two-sided 95 % critical values; computed by
/// integrating the t density, and equal to `scipy.stats.t.ppf(0.975, df)` to 6 digits).
const T_975: [f64; 30] = [
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
    2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
    2.048407, 2.045230, 2.042272,
];

/// The two-sided 95 % critical value of Student's t with `df` degrees of freedom (`df` ≥
/// 1): the table up to 30, then the Cornish-Fisher expansion around the normal quantile
/// (within 1e-5 of the exact value there).
///
/// ```
/// use kd_experiment::student_t::t_975;
///
/// assert_eq!(t_975(4), 2.776445);
/// // Far beyond the table, the normal quantile.
/// assert!((t_975(100_000) - 1.959964).abs() < 1e-4);
/// ```
pub fn t_975(df: usize) -> f64 {
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    if let Some(t) = T_975.get(df - 1) {
        return *t;
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

/// Mean, sample standard deviation and 95 % confidence interval of `xs` (`None` for the
/// deviation and interval of fewer than two values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanInterval {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`).
    pub std: Option<f64>,
    /// The 95 % confidence interval of the mean, `(low, high)`.
    pub interval: Option<(f64, f64)>,
}

/// [`MeanInterval`] of `xs` (non-empty).
///
/// ```
/// use kd_experiment::student_t::mean_interval;
///
/// // Paired gains of five seeds: mean 3, sd sqrt(2.5), half-width t(0.975, 4) * sd / sqrt(5).
/// let m = mean_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]);
/// assert_eq!(m.mean, 3.0);
/// assert!((m.std.unwrap() - 2.5f64.sqrt()).abs() < 1e-12);
/// let (low, high) = m.interval.unwrap();
/// assert!((low - 1.0367568).abs() < 1e-6 && (high - 4.9632432).abs() < 1e-6);
///
/// // One value has neither a deviation nor an interval.
/// let one = mean_interval(&[0.7]);
/// assert_eq!((one.std, one.interval), (None, None));
/// ```
pub fn mean_interval(xs: &[f64]) -> MeanInterval {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return MeanInterval {
            mean,
            std: None,
            interval: None,
        };
    }
    let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let half = t_975(xs.len() - 1) * std / n.sqrt();
    MeanInterval {
        mean,
        std: Some(std),
        interval: Some((mean - half, mean + half)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_of_five_paired_gains_is_the_one_worked_by_hand() {
        // d = 1, 2, 3, 4, 5: mean 3, sd = sqrt(10 / 4) = 1.5811388, se = sd / sqrt(5) =
        // 0.7071068, t(0.975, 4) = 2.776445, half-width 2.776445 * 0.7071068 = 1.9632432:
        // [1.0367568, 4.9632432].
        let m = mean_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(m.mean, 3.0);
        assert!((m.std.unwrap() - 1.5811388).abs() < 1e-6);
        let (lo, hi) = m.interval.unwrap();
        assert!(
            (lo - 1.0367568).abs() < 1e-6 && (hi - 4.9632432).abs() < 1e-6,
            "{lo} {hi}"
        );
    }

    #[test]
    fn critical_values_join_the_table_to_the_expansion() {
        // Integrating the t density: t(0.975, 40) = 2.021075, t(0.975, 120) = 1.979930.
        assert!((t_975(40) - 2.021075).abs() < 1e-5, "{}", t_975(40));
        assert!((t_975(120) - 1.979930).abs() < 1e-5, "{}", t_975(120));
        assert!(t_975(30) > t_975(31) && t_975(31) > t_975(1000));
        assert!((t_975(100_000) - 1.959964).abs() < 1e-4);
    }

    #[test]
    fn one_value_has_no_interval() {
        let m = mean_interval(&[0.7]);
        assert_eq!((m.mean, m.std, m.interval), (0.7, None, None));
    }
}

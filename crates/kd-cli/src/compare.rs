//! `kd-cli compare REPORT...`: one row per run (usually one per seed) and the mean and
//! sample standard deviation of each model's test accuracy, read from `report.json` files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Test accuracies (in %) of teacher, distilled and scratch in one report, and its seed.
fn read_row(path: &Path) -> Result<(u64, [f64; 3])> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a report.json", path.display()))?;
    let mut acc = [0.0; 3];
    for (slot, role) in acc.iter_mut().zip(["teacher", "distilled", "scratch"]) {
        *slot = v["models"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["role"] == role))
            .and_then(|m| m["test_accuracy"].as_f64())
            .with_context(|| {
                format!(
                    "{}: expected models[role={role}].test_accuracy",
                    path.display()
                )
            })?
            * 100.0;
    }
    let seed = v["seed"]
        .as_u64()
        .with_context(|| format!("{}: expected a seed", path.display()))?;
    Ok((seed, acc))
}

/// Mean and sample standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The comparison table for `reports` (paths to `report.json` files or run directories).
pub fn compare(reports: &[PathBuf]) -> Result<String> {
    if reports.is_empty() {
        bail!("compare: expected at least one report.json or run directory");
    }
    let mut rows = Vec::new();
    for p in reports {
        let file = if p.is_dir() {
            p.join("report.json")
        } else {
            p.clone()
        };
        rows.push(read_row(&file)?);
    }
    let mut out = format!(
        "{:>6} {:>9} {:>10} {:>9} {:>8}\n",
        "seed", "teacher", "distilled", "scratch", "gain"
    );
    for (seed, [t, d, s]) in &rows {
        out += &format!("{seed:>6} {t:>8.2}% {d:>9.2}% {s:>8.2}% {:>+8.2}\n", d - s);
    }
    let col = |i: usize| mean_std(&rows.iter().map(|r| r.1[i]).collect::<Vec<_>>());
    let gains: Vec<f64> = rows.iter().map(|r| r.1[1] - r.1[2]).collect();
    let ((t, ts), (d, ds), (s, ss), (g, gs)) = (col(0), col(1), col(2), mean_std(&gains));
    out += &format!("{:>6} {t:>8.2}% {d:>9.2}% {s:>8.2}% {g:>+8.2}\n", "mean");
    out += &format!("{:>6} {ts:>9.2} {ds:>10.2} {ss:>9.2} {gs:>8.2}\n", "std");
    out += &format!(
        "distilled ahead of scratch in {} of {} runs\n",
        gains.iter().filter(|g| **g > 0.0).count(),
        gains.len()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::mean_std;

    #[test]
    fn sample_standard_deviation() {
        // statistics.stdev([1, 2, 3, 4]) == 1.2909944487358056
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.2909944487358056).abs() < 1e-12);
    }
}

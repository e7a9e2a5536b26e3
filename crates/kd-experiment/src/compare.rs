//! `kd-cli compare REPORT...`: one row per run (usually one per seed) and the mean and
//! sample standard deviation of each model's test accuracy, read from `report.json` files.
//! A directory is a run (it holds `report.json`) or a directory of runs (`runs/quickstart`,
//! whose `seed-*` runs are taken in order); a run named twice counts once. Runs of different
//! datasets or test sets are not averaged together: compare refuses them, naming both.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::student_t::mean_interval;

/// One report's row: its seed, the test accuracies (in %) of teacher, distilled and
/// scratch, and what they were measured on (dataset and test images, as far as it says).
struct Row {
    seed: u64,
    accuracy: [f64; 3],
    measured_on: String,
}

/// `fashion-mnist, 10000 test images`, from a report's `dataset` and `test_images` (`?`
/// where a report lacks them), and the precision of its test accuracies where they are not
/// float32: reports written before test accuracies were float32 hold a mixed-precision run's
/// accuracies in that precision (they have no `test_in_run_precision`).
fn measured_on(report: &Value) -> String {
    let dataset = report["dataset"].as_str().unwrap_or("?");
    let images = report["test_images"]
        .as_u64()
        .map_or("?".to_string(), |n| n.to_string());
    let mut on = format!("{dataset}, {images} test images");
    let models = report["models"].as_array();
    let older =
        models.is_some_and(|ms| ms.iter().all(|m| m.get("test_in_run_precision").is_none()));
    match report["precision"].as_str() {
        Some(p) if p != "f32" && older => on += &format!(", accuracies in {p} (an older report)"),
        _ => {}
    }
    on
}

/// The row of the report at `path`.
fn read_row(path: &Path) -> Result<Row> {
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
    Ok(Row {
        seed,
        accuracy: acc,
        measured_on: measured_on(&v),
    })
}

/// Refuses rows measured on different data: `files[i]` holds `rows[i]`.
fn check_same_data(rows: &[Row], files: &[PathBuf]) -> Result<()> {
    let (Some(first), Some(first_file)) = (rows.first(), files.first()) else {
        return Ok(());
    };
    for (row, file) in rows.iter().zip(files).skip(1) {
        if row.measured_on != first.measured_on {
            bail!(
                "{}: {}, but {}: {}: compare averages runs of one dataset and test set (compare these separately)",
                file.display(),
                row.measured_on,
                first_file.display(),
                first.measured_on
            );
        }
    }
    Ok(())
}

/// Mean and sample standard deviation (`None` for a single value, which has none).
fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let m = mean_interval(xs);
    (m.mean, m.std)
}

/// The `report.json` files a command-line path stands for: the file itself, a run
/// directory's report, or the reports of the runs in a directory of runs (sorted by name).
fn report_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.join("report.json").is_file() {
        return Ok(vec![path.join("report.json")]);
    }
    let entries = std::fs::read_dir(path)
        .with_context(|| format!("{}: cannot list the directory", path.display()))?;
    let mut runs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
        .filter(|r| r.is_file())
        .collect();
    if runs.is_empty() {
        bail!(
            "{}: no report.json in it or in its subdirectories (expected a run directory such as runs/quickstart/seed-19, or runs/quickstart)",
            path.display()
        );
    }
    runs.sort_by_key(|r| seed_order(r));
    Ok(runs)
}

/// Sort key of a run's report: `seed-N` directories by N, then others by name.
fn seed_order(report: &Path) -> (u64, String) {
    let name = report
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seed = name
        .strip_prefix("seed-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (seed, name)
}

/// The comparison table for `reports` (`report.json` files, run directories, or
/// directories of runs).
///
/// ```
/// use kd_experiment::compare::compare;
///
/// // Three seeds whose distilled student gains 1, 2 and 3 points over the scratch one.
/// let runs = tempfile::tempdir()?;
/// for (seed, distilled) in [(1, 0.85), (2, 0.86), (3, 0.87)] {
///     let dir = runs.path().join(format!("seed-{seed}"));
///     std::fs::create_dir(&dir)?;
///     let models: Vec<_> = [("teacher", 0.93), ("distilled", distilled), ("scratch", 0.84)]
///         .map(|(role, acc)| serde_json::json!({"role": role, "test_accuracy": acc}))
///         .into();
///     let report = serde_json::json!({
///         "seed": seed, "models": models, "dataset": "fashion-mnist", "test_images": 10000
///     });
///     std::fs::write(dir.join("report.json"), report.to_string())?;
/// }
/// let table = compare(&[runs.path().to_path_buf()])?;
/// assert!(table.contains("distilled ahead of scratch in 3 of 3 runs"));
/// // Mean 2, sd 1, t(0.975, 2) = 4.302653: the interval is 2 ± 2.48.
/// assert!(table.contains("paired gain: mean +2.00 points, std 1.00, 95% CI [-0.48, +4.48]"));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn compare(reports: &[PathBuf]) -> Result<String> {
    if reports.is_empty() {
        bail!("compare: expected at least one report.json or run directory");
    }
    let mut rows = Vec::new();
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for p in reports {
        for file in report_files(p)? {
            let id = file.canonicalize().unwrap_or_else(|_| file.clone());
            if seen.contains(&id) {
                tracing::warn!("{}: named twice, counted once", file.display());
                continue;
            }
            seen.push(id);
            rows.push(read_row(&file)?);
            files.push(file);
        }
    }
    check_same_data(&rows, &files)?;
    let rows: Vec<(u64, [f64; 3])> = rows.iter().map(|r| (r.seed, r.accuracy)).collect();
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
    let std = |s: Option<f64>, width: usize| match s {
        Some(s) => format!("{s:>width$.2}"),
        None => format!("{:>width$}", "n/a"),
    };
    out += &format!(
        "{:>6} {} {} {} {}\n",
        "std",
        std(ts, 9),
        std(ds, 10),
        std(ss, 9),
        std(gs, 8)
    );
    out += &paired_gain(&gains);
    Ok(out)
}

/// The paired gain (distilled − scratch, same seed): how many seeds are ahead, and with
/// two or more seeds its 95 % confidence interval and whether the mean is beyond twice the
/// standard deviation.
fn paired_gain(gains: &[f64]) -> String {
    let mut out = format!(
        "distilled ahead of scratch in {} of {} runs\n",
        gains.iter().filter(|g| **g > 0.0).count(),
        gains.len()
    );
    let m = mean_interval(gains);
    if let (Some(std), Some((lo, hi))) = (m.std, m.interval) {
        out += &format!(
            "paired gain: mean {:+.2} points, std {std:.2}, 95% CI [{lo:+.2}, {hi:+.2}] (Student's t, {} df); mean {} 2 x std\n",
            m.mean,
            gains.len() - 1,
            if m.mean.abs() > 2.0 * std { ">" } else { "<=" },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mean_std;

    #[test]
    fn sample_standard_deviation() {
        // statistics.stdev([1, 2, 3, 4]) == 1.2909944487358056
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s.unwrap() - 1.2909944487358056).abs() < 1e-12);
        // One value has no sample standard deviation.
        assert_eq!(mean_std(&[84.4]), (84.4, None));
    }

    fn write_report(dir: &std::path::Path, seed: u64, distilled: f64) {
        write_report_of(dir, seed, distilled, "fashion-mnist");
    }

    fn write_report_of(dir: &std::path::Path, seed: u64, distilled: f64, dataset: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let models: Vec<serde_json::Value> = [
            ("teacher", 0.93),
            ("distilled", distilled),
            ("scratch", 0.84),
        ]
        .iter()
        .map(|(role, acc)| {
            serde_json::json!({"role": role, "test_accuracy": acc, "test_in_run_precision": null})
        })
        .collect();
        let report = serde_json::json!({
            "seed": seed,
            "models": models,
            "dataset": dataset,
            "test_images": 10000
        });
        std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    }

    #[test]
    fn a_directory_of_runs_is_expanded_in_seed_order_and_a_run_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        for (seed, acc) in [(10, 0.86), (2, 0.85), (1, 0.845)] {
            write_report(&dir.path().join(format!("seed-{seed}")), seed, acc);
        }
        let table = super::compare(&[
            dir.path().to_path_buf(),
            dir.path().join("seed-2"),
            dir.path().join("seed-2/report.json"),
        ])
        .unwrap();
        let seeds: Vec<&str> = table
            .lines()
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with("mean"))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(seeds, ["1", "2", "10"], "{table}");
        assert!(table.contains("in 3 of 3 runs"), "{table}");
    }

    #[test]
    fn a_single_run_has_no_standard_deviation() {
        let dir = tempfile::tempdir().unwrap();
        write_report(dir.path(), 19, 0.8443);
        let table = super::compare(&[dir.path().to_path_buf()]).unwrap();
        let std_line = table
            .lines()
            .find(|l| l.trim_start().starts_with("std"))
            .unwrap();
        assert_eq!(std_line.matches("n/a").count(), 4, "{table}");
        assert!(!table.contains("0.00"), "{table}");
    }

    #[test]
    fn the_paired_gain_has_its_t_interval() {
        // Gains 1, 2, 3 points: mean 2, sd 1, se 1 / sqrt(3) = 0.57735, t(0.975, 2) =
        // 4.302653, half-width 2.48414: [-0.48, +4.48]; the mean is not beyond 2 x sd.
        let dir = tempfile::tempdir().unwrap();
        for (seed, acc) in [(1, 0.85), (2, 0.86), (3, 0.87)] {
            write_report(&dir.path().join(format!("seed-{seed}")), seed, acc);
        }
        let table = super::compare(&[dir.path().to_path_buf()]).unwrap();
        assert!(
            table.contains("paired gain: mean +2.00 points, std 1.00, 95% CI [-0.48, +4.48] (Student's t, 2 df); mean <= 2 x std"),
            "{table}"
        );
        assert!(table.contains("in 3 of 3 runs"), "{table}");
    }

    #[test]
    fn runs_of_different_datasets_are_not_averaged() {
        let dir = tempfile::tempdir().unwrap();
        write_report_of(&dir.path().join("seed-1"), 1, 0.85, "fashion-mnist");
        write_report_of(&dir.path().join("seed-2"), 2, 0.86, "mnist");
        let e = super::compare(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("seed-2/report.json: mnist, 10000 test images, but")
                && e.contains("seed-1/report.json: fashion-mnist, 10000 test images"),
            "{e}"
        );
    }

    #[test]
    fn older_reports_of_bf16_runs_are_not_averaged_with_float32_accuracies() {
        let dir = tempfile::tempdir().unwrap();
        write_report(&dir.path().join("seed-1"), 1, 0.85);
        let old = dir.path().join("seed-2/report.json");
        write_report(old.parent().unwrap(), 2, 0.86);
        let mut report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
        report["precision"] = "bf16".into();
        for m in report["models"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("test_in_run_precision");
        }
        std::fs::write(&old, report.to_string()).unwrap();
        let e = super::compare(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("accuracies in bf16 (an older report)"), "{e}");
    }

    #[test]
    fn a_directory_without_runs_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = super::compare(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no report.json"), "{e}");
    }
}

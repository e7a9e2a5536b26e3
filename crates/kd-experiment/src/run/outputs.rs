//! The last phase of a run: the report comparing the three models, and the run directory's
//! files (rank 0 writes; the other ranks trained and evaluated in step with it).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::context::RunContext;
use super::students::Students;
use crate::atomic::write_atomic;
use crate::env::{device_name, peak_rss_bytes};
use crate::report::{ModelReport, Report};
use crate::run_log::RunLog;

/// Assembles the report and, on rank 0, writes the metrics, events, report and plots.
pub(super) fn write_outputs(
    ctx: &RunContext,
    config_path: &Path,
    teacher: ModelReport,
    students: Students,
    start: Instant,
) -> Result<Report> {
    let (cfg, p, out) = (ctx.cfg, ctx.plan, ctx.out);
    let (distilled, confusion) = students.distilled;
    let (scratch, _) = students.scratch;
    let report = Report {
        name: cfg.name.clone(),
        seed: cfg.seed,
        device: device_name(p.device),
        torch_threads: tch::get_num_threads(),
        precision: cfg.precision().name().into(),
        channels_last: cfg.channels_last,
        train_images: p.data.train.len(),
        student_train_images: p.student_train.len(),
        validation_images: p.data.val.len(),
        test_images: p.data.test.len(),
        distillation_gain_points: 100.0 * (distilled.test_accuracy - scratch.test_accuracy),
        student_speedup: match (&distilled.latency, &teacher.latency) {
            (Some(student), Some(teacher)) => {
                let (one_thread, all_threads) = student.speedup_over(teacher);
                Some(crate::report::Speedup {
                    one_thread,
                    all_threads,
                })
            }
            _ => None,
        },
        models: vec![teacher, distilled, scratch],
        total_seconds: start.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
        dataset: cfg.data.dataset.name().into(),
        config_file: config_path.display().to_string(),
        kd_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("KD_GIT_COMMIT").into(),
        torch_version: crate::env::torch_version(),
    };
    if ctx.ranks.writer() {
        let log = &ctx.log;
        write_atomic(&out.join("metrics.jsonl"), log.metrics_jsonl().as_bytes())?;
        write_atomic(&out.join("metrics.csv"), log.metrics_csv().as_bytes())?;
        write_atomic(&out.join("events.jsonl"), log.events_jsonl().as_bytes())?;
        let json = serde_json::to_string_pretty(&report)?;
        write_atomic(&out.join("report.json"), json.as_bytes())?;
        write_atomic(&out.join("report.md"), report.markdown().as_bytes())?;
        let names = p.data.class_names.as_deref();
        let classes = crate::saved_model::class_labels(cfg.data.dataset, names, confusion.len());
        write_plots(out, log, &classes, &confusion);
    }
    Ok(report)
}

/// The run's PNG plots, each written atomically; a plot that cannot be drawn (no font, say)
/// is a warning, not a failed run.
fn write_plots(out: &Path, log: &RunLog, classes: &[String], confusion: &[Vec<i64>]) {
    type Draw<'a> = &'a dyn Fn(&Path) -> Result<()>;
    let plots: [(&str, Draw); 3] = [
        ("learning_curves.png", &|p| {
            crate::plots::learning_curves(log.rows(), p)
        }),
        ("lr_schedule.png", &|p| {
            crate::plots::lr_schedule(log.rows(), p)
        }),
        ("confusion_distilled.png", &|p| {
            crate::plots::confusion("distilled student, test set", classes, confusion, p)
        }),
    ];
    for (name, draw) in plots {
        if let Err(e) = crate::atomic::write_atomic_with(&out.join(name), draw) {
            tracing::warn!("{name} not drawn: {e:#}");
        }
    }
}

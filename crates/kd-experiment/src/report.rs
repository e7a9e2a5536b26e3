//! The run report: `report.json` (one entry per model: test accuracy and loss, parameter
//! count, file size, training wall time) and the comparison table printed at the end, like
//! the seed notebook's final "Comparison" cell. Test accuracy and loss are float32 (what the
//! saved and exported models compute); a mixed-precision run adds them in its own precision.

use serde::{Deserialize, Serialize};

/// What was measured for one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelReport {
    /// `teacher`, `distilled` or `scratch`.
    pub role: String,
    /// Architecture, e.g. `vgg19` or `student 5x3x64`.
    pub architecture: String,
    /// Where the starting weights came from (pretrained file or checkpoint); `None` for
    /// random initialization.
    pub pretrained: Option<String>,
    /// What the model minimized: `{"loss": "cross-entropy"}`, or the distillation loss with
    /// its parameters and where the teacher's logits came from.
    pub objective: serde_json::Value,
    /// Test accuracy and loss in float32: what `kd-cli eval` prints for the saved file and
    /// what its exports (TorchScript, float ONNX) compute.
    pub test_accuracy: f64,
    /// Mean test cross-entropy, in float32.
    pub test_loss: f64,
    /// The same in the run's mixed precision (bf16 or f16), where it is not float32: what
    /// `kd-cli eval --precision run` prints.
    pub test_in_run_precision: Option<PrecisionScore>,
    /// Trainable parameters (batch norm's running statistics, which `kd-cli summary`'s
    /// "Total params" also counts, are buffers and left out).
    pub parameters: usize,
    /// Size of the saved `.safetensors` file.
    pub file_bytes: u64,
    /// Wall time of training (0 for a teacher loaded from a checkpoint).
    pub train_seconds: f64,
    /// Epochs trained (0 for a model that was loaded, not trained).
    pub epochs_run: usize,
    /// The epoch (from 1) at which a callback stopped training; `None` if none did.
    pub stopped_epoch: Option<usize>,
    /// Median training throughput over the epochs.
    pub train_images_per_s: f64,
    /// Test-set inference throughput in the run's precision, in images per second.
    pub eval_images_per_s: f64,
    /// File name of the weights inside the run directory.
    pub weights: String,
    /// Training images it learned from with their labels, and without (through the
    /// teacher alone); both 0 for a model that was loaded, not trained.
    pub labelled_images: usize,
    /// Training images it learned from without labels, through the teacher alone.
    pub unlabeled_images: usize,
    /// Batch-1 latency (one thread, all threads) and batch-256 throughput of the model's
    /// forward pass on the run's device ([`crate::latency`]).
    pub latency: Option<crate::latency::ModelLatency>,
    /// An ensemble teacher's members: each file, its normalized weight and its own float32
    /// test accuracy (empty for any other model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberScore>,
    /// The teacher's card (calibration, agreement, files); `None` for a student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<crate::teacher_card::TeacherCard>,
}

/// One member of an ensemble teacher, scored alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberScore {
    /// Its file.
    pub file: String,
    /// Its weight, normalized.
    pub weight: f64,
    /// Its test accuracy alone, in float32.
    pub test_accuracy: f64,
}

impl ModelReport {
    /// Records the images the model trained on.
    pub fn trained_on(&mut self, data: &kd_data::ImageDataset) {
        self.labelled_images = data.labelled_len();
        self.unlabeled_images = data.len() - self.labelled_images;
    }

    /// `5,000` or `5,000 + 50,000 unlabeled`; `-` for a model that was not trained.
    fn images_seen(&self) -> String {
        use kd_models::summary::thousands;
        match (self.labelled_images, self.unlabeled_images) {
            (0, 0) => "-".into(),
            (l, 0) => thousands(l),
            (l, u) => format!("{} + {} unlabeled", thousands(l), thousands(u)),
        }
    }
}

/// Test accuracy and loss in one precision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrecisionScore {
    /// `bf16` or `f16`.
    pub precision: String,
    /// Test accuracy, a fraction in [0, 1].
    pub accuracy: f64,
    /// Mean test cross-entropy.
    pub loss: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run's name (`name` in the config).
    pub name: String,
    /// The run's seed.
    pub seed: u64,
    /// The device the run computed on: `cpu` or `cuda:N`.
    pub device: String,
    /// libtorch's CPU thread count during the run.
    pub torch_threads: i32,
    /// `f32`, `bf16` or `f16` (mixed precision).
    pub precision: String,
    /// Whether models and inputs were in channels-last (NHWC) memory format.
    pub channels_last: bool,
    /// Training images of the teacher.
    pub train_images: usize,
    /// Training images of the students (a subset when `student.train_images` is set).
    pub student_train_images: usize,
    /// Images validated on after each epoch.
    pub validation_images: usize,
    /// Test images every model was evaluated on.
    pub test_images: usize,
    /// The teacher, the distilled student and the scratch student, in that order.
    pub models: Vec<ModelReport>,
    /// Distilled minus scratch test accuracy, in percentage points.
    pub distillation_gain_points: f64,
    /// The distilled student's batch-1 speedup over the teacher (ratio of median
    /// latencies): on one thread and on all threads.
    pub student_speedup: Option<Speedup>,
    /// Wall time of the whole run, in seconds.
    pub total_seconds: f64,
    /// Peak resident set size of the whole run (`VmHWM`), in MiB; absent off Linux.
    pub peak_rss_mib: Option<f64>,
    /// Dataset name and the config file the run read.
    pub dataset: String,
    /// The config file's path, as given.
    pub config_file: String,
    /// kd's version, the git commit it was built from, and libtorch's version.
    pub kd_version: String,
    /// `git describe` of the build's commit, or `unknown`.
    pub git_commit: String,
    /// libtorch's version, or `unknown`.
    pub torch_version: String,
}

/// A ratio of batch-1 latencies.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Speedup {
    /// The teacher's median latency over the student's, both on one thread.
    pub one_thread: f64,
    /// The same on all threads.
    pub all_threads: f64,
}

impl Report {
    /// The line with the test accuracies in the run's mixed precision, where it is not
    /// float32 (empty otherwise).
    fn run_precision_line(&self) -> String {
        let scores: Vec<String> = self
            .models
            .iter()
            .filter_map(|m| {
                let s = m.test_in_run_precision.as_ref()?;
                Some(format!("{} {:.2}%", m.role, 100.0 * s.accuracy))
            })
            .collect();
        match self.models.iter().find_map(|m| m.test_in_run_precision.as_ref()) {
            Some(s) => format!(
                "test acc in {} (the run's precision): {}; the table's is float32, as the saved and exported files compute\n",
                s.precision,
                scores.join(", ")
            ),
            None => String::new(),
        }
    }

    /// The batch-1 latency lines of the table: one per model, then the student's speedup.
    fn latency_lines(&self) -> String {
        let mut out = String::new();
        for m in &self.models {
            if let Some(l) = &m.latency {
                out += &format!(
                    "{:<10} batch-1 latency median / p99: {:.3} / {:.3} ms on 1 thread, {:.3} / {:.3} ms on {}; {:.0} img/s at batch 256\n",
                    m.role,
                    l.one_thread.median_ms,
                    l.one_thread.p99_ms,
                    l.all_threads.median_ms,
                    l.all_threads.p99_ms,
                    threads(l.threads),
                    l.batch256_images_per_s
                );
            }
        }
        if let Some(s) = &self.student_speedup {
            out += &format!(
                "the student answers {} than the teacher at batch 1 on one thread, {} on all threads\n",
                relative_speed(s.one_thread),
                relative_speed(s.all_threads)
            );
        }
        out
    }

    /// The comparison table, one row per model.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<10} {:<20} {:>9} {:>9} {:>11} {:>10} {:>12} {:>9} {:>7}\n",
            "model",
            "architecture",
            "test acc",
            "test loss",
            "trainable",
            "file",
            "infer img/s",
            "train s",
            "epochs"
        );
        for m in &self.models {
            out += &format!(
                "{:<10} {:<20} {:>8.2}% {:>9.4} {:>11} {:>8.2}MB {:>12.0} {:>9.1} {:>7}\n",
                m.role,
                m.architecture,
                100.0 * m.test_accuracy,
                m.test_loss,
                kd_models::summary::thousands(m.parameters),
                m.file_bytes as f64 / (1024.0 * 1024.0),
                m.eval_images_per_s,
                m.train_seconds,
                m.epochs_run
            );
        }
        out += &self.run_precision_line();
        out += &self.latency_lines();
        for m in self.models.iter().filter(|m| m.unlabeled_images > 0) {
            out += &format!("{} trained on {} images\n", m.role, m.images_seen());
        }
        if let Some(d) = self.models.iter().find(|m| m.role == "distilled") {
            out += &format!("distilled with {}\n", d.objective);
        }
        if let Some(from) = self.models.first().and_then(|m| m.pretrained.as_ref()) {
            out += &format!("teacher weights from {from}\n");
        }
        out += &format!(
            "distilled - scratch: {:+.2} points (seed {}, {} test images)\n",
            self.distillation_gain_points, self.seed, self.test_images
        );
        out += &format!(
            "{} on {}, {}{}; {:.0} s",
            self.precision,
            self.device,
            threads(self.torch_threads as usize),
            if self.channels_last {
                ", channels-last"
            } else {
                ""
            },
            self.total_seconds
        );
        if let Some(mib) = self.peak_rss_mib {
            out += &format!(", peak memory {mib:.0} MiB");
        }
        out.push('\n');
        out
    }
}

impl Report {
    /// `report.md`: the comparison table, the settings and the environment.
    pub fn markdown(&self) -> String {
        let mut md = format!("# Run `{}`, seed {}\n\n", self.name, self.seed);
        md += "| model | architecture | test accuracy | test loss | trainable parameters | file | inference img/s | train s | epochs |\n";
        md += "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for m in &self.models {
            md += &format!(
                "| {} | {} | {:.2} % | {:.4} | {} | {:.2} MB | {:.0} | {:.1} | {}{} |\n",
                m.role,
                m.architecture,
                100.0 * m.test_accuracy,
                m.test_loss,
                kd_models::summary::thousands(m.parameters),
                m.file_bytes as f64 / (1024.0 * 1024.0),
                m.eval_images_per_s,
                m.train_seconds,
                m.epochs_run,
                m.stopped_epoch
                    .map_or(String::new(), |e| format!(" (stopped at {e})")),
            );
        }
        md += &format!(
            "\nDistilled minus scratch: **{:+.2} points** on {} test images.\n\n",
            self.distillation_gain_points, self.test_images
        );
        let mixed = self.run_precision_line();
        if !mixed.is_empty() {
            md += &format!("{mixed}\n");
        }
        let latency = self.latency_lines();
        if !latency.is_empty() {
            md += "```\n";
            md += &latency;
            md += "```\n\n";
        }
        md += "## Settings\n\n";
        for m in &self.models {
            md += &format!(
                "- {} objective: `{}`; training images: {}\n",
                m.role,
                m.objective,
                m.images_seen()
            );
        }
        if let Some(from) = self.models.first().and_then(|m| m.pretrained.as_ref()) {
            md += &format!("- teacher weights from {from}\n");
        }
        md += &format!(
            "- data: `{}`, {} training images (students: {}), {} validation, {} test\n",
            self.dataset,
            self.train_images,
            self.student_train_images,
            self.validation_images,
            self.test_images
        );
        md += &format!(
            "- config: `{}` (resolved: `config.toml`); precision {}, channels-last {}\n",
            self.config_file, self.precision, self.channels_last
        );
        md += &format!(
            "\n## Environment\n\n- kd {} (git {}), libtorch {}\n- device {}, {} CPU threads\n- wall time {:.0} s{}\n",
            self.kd_version,
            self.git_commit,
            self.torch_version,
            self.device,
            self.torch_threads,
            self.total_seconds,
            self.peak_rss_mib
                .map_or(String::new(), |m| format!(", peak memory {m:.0} MiB")),
        );
        md += "\nPer-epoch metrics: `metrics.csv` (and `metrics.jsonl`); callback actions: `events.jsonl`.\n";
        md
    }
}

/// A speed ratio (`fast / slow` times) in words: `2.2x faster`, or `5.0x slower` below 1.
pub fn relative_speed(ratio: f64) -> String {
    if ratio >= 1.0 {
        format!("{ratio:.1}x faster")
    } else {
        format!("{:.1}x slower", 1.0 / ratio)
    }
}

/// `1 thread`, `2 threads`.
pub fn threads(n: usize) -> String {
    format!("{n} thread{}", if n == 1 { "" } else { "s" })
}

/// Median of a non-empty list (0 for an empty one).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::{median, relative_speed, threads};

    #[test]
    fn speeds_below_one_read_as_slower_and_one_thread_is_singular() {
        assert_eq!(relative_speed(2.24), "2.2x faster");
        assert_eq!(relative_speed(0.2), "5.0x slower");
        assert_eq!(relative_speed(1.0), "1.0x faster");
        assert_eq!(threads(1), "1 thread");
        assert_eq!(threads(2), "2 threads");
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}

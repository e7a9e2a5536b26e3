//! Training progress on the terminal: a bar per epoch with the running loss and accuracy and
//! an ETA (indicatif), cleared when the epoch ends so that the one-line epoch summary that
//! `kd-train` logs takes its place, as Keras' `fit(verbose=1)` does. Off a terminal (a
//! pipe, a CI log) or with `-q`, nothing is drawn and the epoch lines alone remain.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kd_train::{EpochMetrics, Progress};

/// How often the running metrics are read from the device (each read synchronises).
const REFRESH: Duration = Duration::from_millis(250);

/// Progress bars on stderr when it is a terminal; nothing otherwise.
#[derive(Debug)]
pub struct TerminalProgress {
    enabled: bool,
    bar: Option<ProgressBar>,
    last_read: Option<Instant>,
}

impl TerminalProgress {
    /// Bars when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
            last_read: None,
        }
    }
}

impl Progress for TerminalProgress {
    fn epoch_start(&mut self, phase: &str, epoch: usize, epochs: usize, batches: usize) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{phase} {epoch}/{epochs}"));
        self.bar = Some(bar);
        self.last_read = None;
    }

    fn batch(&mut self, done: usize, running: &dyn Fn() -> (f64, f64)) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(done as u64);
        let last = bar.length() == Some(done as u64);
        if last || self.last_read.is_none_or(|t| t.elapsed() >= REFRESH) {
            let (loss, accuracy) = running();
            bar.set_message(format!("loss {loss:.4} - accuracy {accuracy:.4}"));
            self.last_read = Some(Instant::now());
        }
        if last {
            bar.set_message(format!("{} - validating", bar.message()));
        }
    }

    fn epoch_end(&mut self, _phase: &str, _metrics: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A run's log lines also go to its `train.log` once the run directory exists.
impl kd_experiment::run::Observer for TerminalProgress {
    fn run_dir_ready(&mut self, log: &std::path::Path, resume: bool) -> anyhow::Result<()> {
        crate::logging::log_to_file(log, resume)
    }
}

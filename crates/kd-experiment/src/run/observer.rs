//! What a program running an experiment sees of it as it goes: each fit's epochs and
//! batches (kd-train's [`Progress`]), and the run directory once it exists, so that a
//! front end can send its log lines to the run's `train.log`.

use std::path::Path;

use kd_train::{NoProgress, Progress};

/// Watches a run. Only the process that writes the run directory is told anything (rank 0 of
/// a data-parallel run).
///
/// ```
/// use std::path::Path;
/// use kd_experiment::run::Observer;
/// use kd_train::{EpochMetrics, Progress};
///
/// /// Counts the epochs of every phase.
/// #[derive(Default)]
/// struct Epochs(usize);
///
/// impl Progress for Epochs {
///     fn epoch_end(&mut self, _phase: &str, _metrics: &EpochMetrics) {
///         self.0 += 1;
///     }
/// }
///
/// impl Observer for Epochs {}
///
/// let mut epochs = Epochs::default();
/// epochs.run_dir_ready(Path::new("runs/x/train.log"), false).unwrap();
/// assert_eq!(epochs.0, 0);
/// ```
pub trait Observer: Progress {
    /// The run directory exists (or is resumed, `resume`); `log` is its `train.log`, to be
    /// appended to when resuming and started afresh otherwise.
    fn run_dir_ready(&mut self, _log: &Path, _resume: bool) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Sees nothing.
impl Observer for NoProgress {}

//! Where log lines go: stderr, coloured only on a terminal and never with `NO_COLOR` set
//! (no-color.org), with timestamps when stderr is a file or a pipe; and, once a run has
//! its directory, also `train.log` there (timestamps, no colour), so that a run directory
//! tells its own story.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// The run's `train.log`, once [`log_to_file`] has opened it.
static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// A writer appending to the run's log file; writes nothing before one is open.
#[derive(Debug)]
struct RunLogWriter;

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = RUN_LOG.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = file.as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut file = RUN_LOG.lock().unwrap_or_else(|p| p.into_inner());
        file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

/// Whether log lines on stderr may carry colour codes: stderr is a terminal and `NO_COLOR`
/// is unset or empty.
pub fn stderr_colour(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the subscriber. Stderr shows `RUST_LOG` if set, else `level` (`debug`, `info`,
/// `warn`); the run's `train.log` keeps at least the `info` lines whatever stderr shows
/// (`-q` quiets the terminal, not the record).
pub fn init(level: &str) {
    let terminal = std::io::stderr().is_terminal();
    let colour = stderr_colour(terminal, std::env::var("NO_COLOR").ok().as_deref());
    let stderr_filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let on_terminal = terminal.then(|| {
        fmt::layer()
            .with_target(false)
            .without_time()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .with_filter(stderr_filter())
    });
    let off_terminal = (!terminal).then(|| {
        fmt::layer()
            .with_target(false)
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .with_filter(stderr_filter())
    });
    let file = fmt::layer()
        .with_target(false)
        .with_ansi(false)
        .with_writer(|| RunLogWriter)
        .with_filter(EnvFilter::new(if level == "debug" {
            "debug"
        } else {
            "info"
        }));
    tracing_subscriber::registry()
        .with(on_terminal)
        .with(off_terminal)
        .with(file)
        .init();
}

/// From now on, log lines also go to `path` (a run's `train.log`): appended when `append`
/// (a resumed run continues its file), else the file starts empty.
pub fn log_to_file(path: &Path, append: bool) -> Result<()> {
    let file = File::options()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .with_context(|| format!("cannot write the log {}", path.display()))?;
    *RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(stderr_colour(true, None));
        assert!(stderr_colour(true, Some("")));
        assert!(!stderr_colour(true, Some("1")));
        assert!(!stderr_colour(false, None));
    }
}

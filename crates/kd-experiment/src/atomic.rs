//! Atomic file writes: write a temporary file in the target's directory, sync it to disk,
//! then rename it over the target, so a crash never leaves a half-written report where a good
//! one was. Files are created with mode 0666 less the umask, as any other program's are.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A temporary file beside `path` (with `suffix`), readable as the umask allows.
fn temporary_beside(path: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        bail!(
            "cannot write {}: the folder {} does not exist (create it first, or choose another path)",
            path.display(),
            dir.display()
        );
    }
    if !dir.is_dir() {
        bail!(
            "cannot write {}: {} is a file, not a folder",
            path.display(),
            dir.display()
        );
    }
    tempfile::Builder::new()
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write {}: cannot create a file in {}",
                path.display(),
                dir.display()
            )
        })
}

/// Has `write` produce a file at a temporary path beside `path` (same extension, for
/// writers that pick the format from it), then moves it over `path`; on failure the
/// temporary file is removed and `path` is untouched.
///
/// ```
/// use kd_experiment::atomic::write_atomic_with;
///
/// let dir = tempfile::tempdir()?;
/// let plot = dir.path().join("plot.png");
/// write_atomic_with(&plot, |tmp| {
///     assert_eq!(tmp.extension().unwrap(), "png");
///     Ok(std::fs::write(tmp, b"png bytes")?)
/// })?;
/// assert_eq!(std::fs::read(&plot)?, b"png bytes");
///
/// // A writer that fails leaves the old file as it was.
/// assert!(write_atomic_with(&plot, |_| anyhow::bail!("no font")).is_err());
/// assert_eq!(std::fs::read(&plot)?, b"png bytes");
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let suffix = path
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    let tmp = temporary_beside(path, &suffix)?.into_temp_path();
    write(&tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}: cannot sync it", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}: cannot replace it", path.display()))?;
    Ok(())
}

/// Writes `contents` to `path` atomically.
///
/// ```
/// use kd_experiment::atomic::write_atomic;
///
/// let dir = tempfile::tempdir()?;
/// let report = dir.path().join("report.md");
/// write_atomic(&report, b"first")?;
/// write_atomic(&report, b"second")?;
/// assert_eq!(std::fs::read_to_string(&report)?, "second");
/// // No temporary file is left beside it.
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut tmp = temporary_beside(path, "")?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}: cannot replace it", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_follow_the_umask_like_model_files() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.md");
        write_atomic(&report, b"x").unwrap();
        let plot = dir.path().join("plot.png");
        write_atomic_with(&plot, |p| Ok(std::fs::write(p, b"y")?)).unwrap();
        // What a plain create gives under this process's umask (0644 under umask 022).
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"z").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report), mode(&plain));
        assert_eq!(mode(&plot), mode(&plain));
    }

    #[test]
    fn a_missing_folder_is_named_not_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/model.pt");
        let e = format!("{:#}", write_atomic(&target, b"x").unwrap_err());
        assert!(
            e.contains("model.pt")
                && e.contains("no/such/dir does not exist")
                && !e.contains("temporary"),
            "{e}"
        );
        let e = format!("{:#}", write_atomic_with(&target, |_| Ok(())).unwrap_err());
        assert!(e.contains("does not exist"), "{e}");
    }
}

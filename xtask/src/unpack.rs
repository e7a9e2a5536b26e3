//! Safe extraction of a `.tar.gz` archive: only regular files and directories under one
//! expected top-level directory are accepted; absolute paths, `..` components, symlinks,
//! hard links and device entries are refused. Everything is unpacked into a fresh temporary
//! directory beside the destination, checked, and renamed into place, so an archive that
//! fails half-way leaves nothing under the destination.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;

/// Unpacks `archive` (a gzipped tar whose entries all lie under `top/`) and moves `top/` to
/// `dest_parent/top`, after `check` approves the unpacked directory. A previous
/// `dest_parent/top` is replaced.
pub fn unpack_tar_gz(
    archive: &Path,
    top: &str,
    dest_parent: &Path,
    check: impl Fn(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let what = archive.display().to_string();
    std::fs::create_dir_all(dest_parent)
        .with_context(|| format!("{}: cannot create", dest_parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{top}.unpack-"))
        .tempdir_in(dest_parent)
        .with_context(|| {
            format!(
                "{}: cannot create a staging directory",
                dest_parent.display()
            )
        })?;
    let file = File::open(archive).with_context(|| format!("{what}: cannot open"))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let entries = tar
        .entries()
        .with_context(|| format!("{what}: not a tar archive"))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{what}: corrupt archive"))?;
        let path = entry
            .path()
            .with_context(|| format!("{what}: entry with an unreadable path"))?
            .into_owned();
        let shown = path.display().to_string();
        let relative: Vec<_> = path.components().collect();
        if relative
            .iter()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("{what}: entry {shown:?} leaves the archive directory (absolute or ..)");
        }
        let normal: PathBuf = relative
            .iter()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if normal.components().next().map(|c| c.as_os_str()) != Some(top.as_ref()) {
            bail!("{what}: entry {shown:?} is not under {top}/");
        }
        let kind = entry.header().entry_type();
        let target = staging.path().join(&normal);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("{}: cannot create", target.display()))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            let mut out = File::create(&target)
                .with_context(|| format!("{}: cannot create", target.display()))?;
            std::io::copy(&mut entry, &mut out)
                .and_then(|_| out.sync_all())
                .with_context(|| format!("{what}: entry {shown:?} is truncated or corrupt"))?;
        } else {
            bail!("{what}: entry {shown:?} is a {kind:?}, expected only regular files and directories");
        }
    }
    let unpacked = staging.path().join(top);
    if !unpacked.is_dir() {
        bail!("{what}: expected a top-level directory {top}/, found none");
    }
    check(&unpacked).with_context(|| format!("{what}: unpacked content is not as published"))?;
    let dest = dest_parent.join(top);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)
            .with_context(|| format!("{}: cannot replace", dest.display()))?;
    }
    std::fs::rename(&unpacked, &dest)
        .with_context(|| format!("{}: cannot move into place", dest.display()))?;
    Ok(dest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    /// An entry of a test archive.
    pub(crate) enum Entry<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    /// A `.tar.gz` of `entries`, written with raw header paths (so `../x` is possible).
    pub(crate) fn tar_gz(entries: &[Entry]) -> Vec<u8> {
        let mut builder =
            tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (path, data, kind): (&str, &[u8], tar::EntryType) = match e {
                Entry::File(p, d) => (p, d, tar::EntryType::Regular),
                Entry::Dir(p) => (p, &[], tar::EntryType::Directory),
                Entry::Symlink(p, target) => {
                    h.set_link_name(target).unwrap();
                    (p, &[], tar::EntryType::Symlink)
                }
            };
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append(&h, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, bytes).unwrap();
        let out = dir.path().join("data");
        let r = unpack_tar_gz(&archive, "top", &out, |_| Ok(()));
        (dir, r)
    }

    /// Names in `data/` after an attempt (staging directories must be gone).
    fn leftovers(dir: &tempfile::TempDir) -> Vec<String> {
        std::fs::read_dir(dir.path().join("data"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn unpacks_files_under_the_top_directory() {
        let bytes = tar_gz(&[
            Entry::Dir("top/"),
            Entry::File("top/a.bin", b"abc"),
            Entry::File("top/sub/b.txt", b"x"),
        ]);
        let (dir, r) = unpack(&bytes);
        let top = r.unwrap();
        assert_eq!(std::fs::read(top.join("a.bin")).unwrap(), b"abc");
        assert_eq!(std::fs::read(top.join("sub/b.txt")).unwrap(), b"x");
        assert_eq!(leftovers(&dir), ["top"]);
    }

    #[test]
    fn path_traversal_is_refused_and_nothing_is_left() {
        for evil in ["top/../../x", "/etc/x", "top/../top2/x"] {
            let bytes = tar_gz(&[Entry::File("top/ok", b"1"), Entry::File(evil, b"2")]);
            let (dir, r) = unpack(&bytes);
            let msg = format!("{:#}", r.unwrap_err());
            assert!(msg.contains(evil), "{msg}");
            assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
            assert!(!dir.path().join("x").exists());
        }
    }

    #[test]
    fn symlinks_and_foreign_directories_are_refused() {
        let (dir, r) = unpack(&tar_gz(&[Entry::Symlink("top/link", "/etc/passwd")]));
        let msg = format!("{:#}", r.unwrap_err());
        assert!(msg.contains("top/link") && msg.contains("Symlink"), "{msg}");
        assert!(leftovers(&dir).is_empty());
        let (_, r) = unpack(&tar_gz(&[Entry::File("other/a", b"1")]));
        assert!(format!("{:#}", r.unwrap_err()).contains("not under top/"));
    }

    #[test]
    fn corrupt_and_truncated_archives_are_refused() {
        let bytes = tar_gz(&[Entry::File("top/a.bin", &[7u8; 50_000])]);
        let (dir, r) = unpack(&bytes[..bytes.len() / 2]);
        assert!(r.is_err());
        assert!(leftovers(&dir).is_empty());
        let (dir, r) = unpack(b"this is not gzip");
        assert!(r.is_err());
        assert!(leftovers(&dir).is_empty());
    }

    #[test]
    fn a_failed_check_keeps_the_previous_directory() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, tar_gz(&[Entry::File("top/a.bin", b"new")])).unwrap();
        let out = dir.path().join("data");
        std::fs::create_dir_all(out.join("top")).unwrap();
        std::fs::write(out.join("top/a.bin"), b"old").unwrap();
        let err = unpack_tar_gz(&archive, "top", &out, |_| bail!("wrong size")).unwrap_err();
        assert!(format!("{err:#}").contains("wrong size"));
        assert_eq!(std::fs::read(out.join("top/a.bin")).unwrap(), b"old");
        assert_eq!(leftovers(&dir), ["top"]);
    }
}

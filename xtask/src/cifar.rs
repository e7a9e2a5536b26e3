//! `cargo xtask fetch-data --dataset cifar10|cifar100`: the binary versions of CIFAR-10 and
//! CIFAR-100 (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>), downloaded
//! from the published URL (or `--mirror URL` / `KD_MIRROR`, which replaces the base URL),
//! checked against the published MD5, and unpacked safely into `data/<archive directory>/`
//! (`data/cifar-10-batches-bin`, `data/cifar-100-binary`), the layout kd-data reads.
//!
//! The archive is kept beside the unpacked directory, and a marker file inside that
//! directory records the archive's MD5, so a second fetch finds everything intact and does
//! nothing; an interrupted download resumes ([`crate::download`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::download::{download_verified, Checksum};
use crate::unpack::unpack_tar_gz;

/// Where the CIFAR archives are published.
pub const CIFAR_URL: &str = "https://www.cs.toronto.edu/~kriz";

/// A published CIFAR archive.
#[derive(Debug, Clone, Copy)]
pub struct CifarArchive {
    /// File name of the archive at the base URL.
    pub archive: &'static str,
    /// MD5 from the CIFAR page.
    pub md5: &'static str,
    /// The directory the archive unpacks to.
    pub dir: &'static str,
    /// Data files the directory must hold.
    pub files: &'static [&'static str],
    /// Bytes per record (label bytes + 3072 pixels): each file is a whole number of records.
    pub record_bytes: u64,
}

/// CIFAR-10, binary version.
pub const CIFAR10: CifarArchive = CifarArchive {
    archive: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    dir: "cifar-10-batches-bin",
    files: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ],
    record_bytes: 1 + 3072,
};

/// CIFAR-100, binary version (coarse and fine labels).
pub const CIFAR100: CifarArchive = CifarArchive {
    archive: "cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    dir: "cifar-100-binary",
    files: &["train.bin", "test.bin"],
    record_bytes: 2 + 3072,
};

/// Name of the marker holding the MD5 of the archive a directory was unpacked from.
const MARKER: &str = ".kd-archive-md5";

/// Fails unless every data file is present and a non-empty whole number of records.
fn check_unpacked(spec: &CifarArchive, dir: &Path) -> Result<()> {
    for name in spec.files {
        let path = dir.join(name);
        let len = std::fs::metadata(&path)
            .with_context(|| format!("{name}: missing from the archive"))?
            .len();
        if len == 0 || len % spec.record_bytes != 0 {
            bail!(
                "{name}: expected a whole number of {}-byte records, got {len} bytes",
                spec.record_bytes
            );
        }
    }
    Ok(())
}

/// Whether `dir` was unpacked from this archive and is still complete.
fn is_intact(spec: &CifarArchive, dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m.trim() == spec.md5)
        && check_unpacked(spec, dir).is_ok()
}

/// Makes `data_dir/<spec.dir>` present and verified; returns it.
pub fn fetch_cifar(spec: &CifarArchive, mirror: Option<&str>, data_dir: &Path) -> Result<PathBuf> {
    let dest = data_dir.join(spec.dir);
    if is_intact(spec, &dest) {
        eprintln!("xtask: {} already unpacked and intact", dest.display());
        return Ok(dest);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create", data_dir.display()))?;
    let archive = data_dir.join(spec.archive);
    let checksum = Checksum::Md5(spec.md5);
    if !(archive.is_file() && checksum.verify_file(&archive).is_ok()) {
        let url = format!(
            "{}/{}",
            mirror.unwrap_or(CIFAR_URL).trim_end_matches('/'),
            spec.archive
        );
        eprintln!("xtask: downloading {url}");
        download_verified(&url, &archive, checksum)?;
    }
    eprintln!("xtask: unpacking {}", archive.display());
    let dest = unpack_tar_gz(&archive, spec.dir, data_dir, |dir| {
        check_unpacked(spec, dir)?;
        std::fs::write(dir.join(MARKER), spec.md5).context("cannot write the marker")
    })?;
    eprintln!("xtask: {} ready", dest.display());
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::{serve, serve_routes, Route};
    use crate::unpack::tests::{tar_gz, Entry};

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// A small archive in the published CIFAR-10 layout: the real member names, 2 records
    /// per batch file, the metadata files.
    fn small_cifar10() -> Vec<u8> {
        let records: Vec<u8> = (0..2 * 3073).map(|i| (i % 256) as u8).collect();
        let mut entries = vec![
            Entry::Dir("cifar-10-batches-bin/"),
            Entry::File(
                "cifar-10-batches-bin/batches.meta.txt",
                b"airplane\nautomobile\n",
            ),
            Entry::File("cifar-10-batches-bin/readme.html", b"<html></html>"),
        ];
        for f in CIFAR10.files {
            entries.push(Entry::File(
                leak(format!("cifar-10-batches-bin/{f}")),
                &records,
            ));
        }
        tar_gz(&entries)
    }

    fn spec_for(bytes: &[u8]) -> CifarArchive {
        CifarArchive {
            md5: leak(Checksum::Md5("").digest(bytes)),
            ..CIFAR10
        }
    }

    #[test]
    fn downloads_verifies_unpacks_and_then_keeps() {
        let bytes = small_cifar10();
        let spec = spec_for(&bytes);
        let (base, log) = serve_routes(vec![Route::ok("/cifar-10-binary.tar.gz", bytes)]);
        let data = tempfile::tempdir().unwrap();
        let dir = fetch_cifar(&spec, Some(&base), data.path()).unwrap();
        assert_eq!(dir, data.path().join("cifar-10-batches-bin"));
        assert_eq!(
            std::fs::metadata(dir.join("test_batch.bin")).unwrap().len(),
            2 * 3073
        );
        assert!(dir.join("batches.meta.txt").exists());
        // A second fetch neither downloads nor unpacks.
        fetch_cifar(&spec, Some("http://127.0.0.1:9"), data.path()).unwrap();
        assert_eq!(log.lock().unwrap().len(), 1);
        // A damaged unpacked file is restored from the kept archive, without a download.
        std::fs::write(dir.join("data_batch_3.bin"), b"short").unwrap();
        fetch_cifar(&spec, Some("http://127.0.0.1:9"), data.path()).unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("data_batch_3.bin"))
                .unwrap()
                .len(),
            2 * 3073
        );
    }

    #[test]
    fn checksum_mismatch_removes_the_download_and_names_both_digests() {
        let bytes = small_cifar10();
        let base = serve(vec![("/cifar-10-binary.tar.gz", 200, bytes.clone())]);
        let data = tempfile::tempdir().unwrap();
        let err = fetch_cifar(&CIFAR10, Some(&base), data.path()).unwrap_err();
        let msg = format!("{err:#}");
        let got = Checksum::Md5("").digest(&bytes);
        assert!(msg.contains(CIFAR10.md5) && msg.contains(&got), "{msg}");
        assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_download_then_complete_download() {
        let bytes = small_cifar10();
        let spec = spec_for(&bytes);
        let data = tempfile::tempdir().unwrap();
        let cut = Route {
            cut_after: Some(bytes.len() / 3),
            ..Route::ok("/cifar-10-binary.tar.gz", bytes.clone())
        };
        let (base, _) = serve_routes(vec![cut]);
        assert!(fetch_cifar(&spec, Some(&base), data.path()).is_err());
        assert!(!data.path().join("cifar-10-batches-bin").exists());
        let (base, log) = serve_routes(vec![Route::ok("/cifar-10-binary.tar.gz", bytes)]);
        fetch_cifar(&spec, Some(&base), data.path()).unwrap();
        assert!(
            log.lock().unwrap()[0].1.is_some(),
            "resumed with a range request"
        );
    }

    #[test]
    fn archive_with_a_wrong_length_batch_is_refused_whole() {
        let bad: Vec<u8> = vec![0u8; 3073 + 5];
        let good: Vec<u8> = vec![0u8; 3073];
        let mut entries = vec![];
        for f in CIFAR10.files {
            let data: &[u8] = if *f == "data_batch_2.bin" {
                &bad
            } else {
                &good
            };
            entries.push(Entry::File(leak(format!("cifar-10-batches-bin/{f}")), data));
        }
        let bytes = tar_gz(&entries);
        let spec = spec_for(&bytes);
        let base = serve(vec![("/cifar-10-binary.tar.gz", 200, bytes)]);
        let data = tempfile::tempdir().unwrap();
        let msg = format!(
            "{:#}",
            fetch_cifar(&spec, Some(&base), data.path()).unwrap_err()
        );
        assert!(
            msg.contains("data_batch_2.bin") && msg.contains("3073-byte"),
            "{msg}"
        );
        assert!(!data.path().join("cifar-10-batches-bin").exists());
    }

    #[test]
    fn not_found_is_an_error_naming_the_url() {
        let base = serve(vec![]);
        let data = tempfile::tempdir().unwrap();
        let msg = format!(
            "{:#}",
            fetch_cifar(&CIFAR100, Some(&base), data.path()).unwrap_err()
        );
        assert!(
            msg.contains("cifar-100-binary.tar.gz") && msg.contains("404"),
            "{msg}"
        );
    }
}

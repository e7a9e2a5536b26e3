//! `cargo xtask fetch-data`: puts a dataset under `data/<name>/`, verified.
//!
//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, <https://github.com/zalandoresearch/fashion-mnist>)
//! is downloaded from its published URLs (or `--mirror URL` / `KD_MIRROR`) and checked
//! against the published MD5 of each `.gz`. When the download fails (no network), the copy
//! installed by Debian's `dataset-fashion-mnist` package is used instead (installed with
//! apt-get when possible); Debian recompressed the files, so that copy is checked against the
//! SHA-256 of the decompressed IDX content instead. Files already present and intact are
//! kept.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;

use crate::download::{download_verified, Checksum};

/// One file of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct DatasetFile {
    pub name: &'static str,
    /// Published checksum of the file as distributed.
    pub published: Checksum,
    /// SHA-256 of the decompressed content (the IDX bytes).
    pub content_sha256: &'static str,
}

/// Published location of Fashion-MNIST.
pub const FASHION_MNIST_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";
/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// MD5s from the Fashion-MNIST README; content SHA-256s from `zcat FILE | sha256sum`.
pub const FASHION_MNIST: [DatasetFile; 4] = [
    DatasetFile {
        name: "train-images-idx3-ubyte.gz",
        published: Checksum::Md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        content_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    DatasetFile {
        name: "train-labels-idx1-ubyte.gz",
        published: Checksum::Md5("25c81989df183df01b3e8a0aad5dffbe"),
        content_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    DatasetFile {
        name: "t10k-images-idx3-ubyte.gz",
        published: Checksum::Md5("bef4ecab320f06d8554ea6380940ec79"),
        content_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    DatasetFile {
        name: "t10k-labels-idx1-ubyte.gz",
        published: Checksum::Md5("bb300cfdad3c16e7a12a480ee83cd310"),
        content_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// Checks the decompressed content of a `.gz` file against `file.content_sha256`.
fn verify_content(path: &Path, file: &DatasetFile) -> Result<()> {
    let gz = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut content = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut content)
        .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
    Checksum::Sha256(file.content_sha256).verify(&content, &path.display().to_string())
}

/// Fetches `dataset` into `data_dir/<dataset>/`; returns that directory.
pub fn fetch_dataset(dataset: &str, mirror: Option<&str>, data_dir: &Path) -> Result<PathBuf> {
    match dataset {
        "fashion-mnist" => fetch_files(
            &FASHION_MNIST,
            mirror.unwrap_or(FASHION_MNIST_URL),
            Some(Path::new(FASHION_MNIST_DEBIAN_DIR)),
            &data_dir.join("fashion-mnist"),
        ),
        "cifar10" => crate::cifar::fetch_cifar(&crate::cifar::CIFAR10, mirror, data_dir),
        "cifar100" => crate::cifar::fetch_cifar(&crate::cifar::CIFAR100, mirror, data_dir),
        other => bail!("--dataset: expected fashion-mnist, cifar10 or cifar100, got {other:?}"),
    }
}

/// Makes every file of `files` present and verified in `dir`: kept if intact, else downloaded
/// from `base_url`, else copied from `local_copy`.
pub fn fetch_files(
    files: &[DatasetFile],
    base_url: &str,
    local_copy: Option<&Path>,
    dir: &Path,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    for file in files {
        let dest = dir.join(file.name);
        if dest.exists() && verify_content(&dest, file).is_ok() {
            continue;
        }
        let url = format!("{}/{}", base_url.trim_end_matches('/'), file.name);
        eprintln!("xtask: downloading {url}");
        let downloaded = download_verified(&url, &dest, file.published)
            .and_then(|_| verify_content(&dest, file));
        let Err(download_error) = downloaded else {
            continue;
        };
        let _ = std::fs::remove_file(&dest);
        let Some(local) = local_copy else {
            return Err(download_error);
        };
        eprintln!(
            "xtask: download failed ({download_error:#}); using {}",
            local.display()
        );
        copy_local(&local.join(file.name), &dest, file)
            .with_context(|| format!("download failed too: {download_error:#}"))?;
    }
    eprintln!("xtask: {} ready", dir.display());
    Ok(dir.to_path_buf())
}

/// Copies a locally installed file (installing Debian's package first if it is missing),
/// verifying its content; writes through a temporary file.
fn copy_local(src: &Path, dest: &Path, file: &DatasetFile) -> Result<()> {
    if !src.exists() {
        install_debian_package();
    }
    if !src.exists() {
        bail!(
            "{} is missing: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or give --mirror",
            src.display()
        );
    }
    verify_content(src, file)?;
    let part = crate::download::part_path(dest);
    std::fs::copy(src, &part)
        .with_context(|| format!("{}: cannot copy to {}", src.display(), part.display()))?;
    std::fs::rename(&part, dest).with_context(|| format!("{}: cannot rename", part.display()))?;
    Ok(())
}

/// Best effort: `apt-get install -y dataset-fashion-mnist` (needs root and Debian's mirror).
fn install_debian_package() {
    eprintln!("xtask: installing Debian's dataset-fashion-mnist package");
    let ok = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !ok(&["install", "-y", "-q", "dataset-fashion-mnist"]) {
        let _ = ok(&["update", "-q"]) && ok(&["install", "-y", "-q", "dataset-fashion-mnist"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::serve;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// A one-file dataset whose published archive is `gz`.
    fn dataset_of(content: &[u8], gz: &[u8]) -> [DatasetFile; 1] {
        [DatasetFile {
            name: "labels.gz",
            published: Checksum::Md5(leak(Checksum::Md5("").digest(gz))),
            content_sha256: leak(Checksum::Sha256("").digest(content)),
        }]
    }

    #[test]
    fn downloads_from_a_mirror_then_keeps_the_verified_file() {
        let content = b"\0\0\x08\x01\0\0\0\x02\x03\x07".to_vec();
        let gz = gzip(&content);
        let files = dataset_of(&content, &gz);
        let base = serve(vec![("/labels.gz", 200, gz.clone())]);
        let dir = tempfile::tempdir().unwrap();
        fetch_files(&files, &base, None, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("labels.gz")).unwrap(), gz);
        // A second fetch needs no server: the file is intact and kept.
        fetch_files(&files, "http://127.0.0.1:9", None, dir.path()).unwrap();
    }

    #[test]
    fn falls_back_to_the_local_copy_when_offline() {
        let content = b"idx content".to_vec();
        let published = gzip(&content);
        let files = dataset_of(&content, &published);
        // The local copy was recompressed (different gz bytes, same content).
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&content).unwrap();
        let recompressed = enc.finish().unwrap();
        let local = tempfile::tempdir().unwrap();
        std::fs::write(local.path().join("labels.gz"), &recompressed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        fetch_files(&files, "http://127.0.0.1:9", Some(local.path()), dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("labels.gz")).unwrap(),
            recompressed
        );
    }

    #[test]
    fn corrupt_local_copy_is_refused() {
        let content = b"idx content".to_vec();
        let files = dataset_of(&content, &gzip(&content));
        let local = tempfile::tempdir().unwrap();
        std::fs::write(local.path().join("labels.gz"), gzip(b"other content")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err =
            fetch_files(&files, "http://127.0.0.1:9", Some(local.path()), dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("sha256 mismatch"), "{err:#}");
        assert!(!dir.path().join("labels.gz").exists());
    }

    #[test]
    fn unknown_dataset_is_named() {
        let err = fetch_dataset("imagenet", None, Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("imagenet"));
    }
}

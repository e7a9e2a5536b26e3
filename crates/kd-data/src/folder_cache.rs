//! The decoded-pixel cache of an image folder: `dir/.kd-cache/<split>.kdimg`, one file per
//! split, read instead of decoding when its key matches. The key is a hash of every image
//! file's relative path, size, modification time and label, and of the decoding settings,
//! so a changed, added, removed or renamed file — or another `image_size` — makes the cache
//! stale. A cache is written to a temporary file and renamed into place, so a build killed
//! half-way leaves nothing a later run would trust; a cache that cannot be written (a
//! read-only data folder) is a warning, not an error.
//!
//! Layout (little-endian): `KDIMG001`, key (u64), n, channels, height, width, classes (u64
//! each), then n labels (u8) and n x channels x height x width pixels (u8).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ndarray::Array4;

use crate::dataset::ImageDataset;
use crate::error::Result;

const MAGIC: &[u8; 8] = b"KDIMG001";
const HEADER: usize = 8 + 6 * 8;

/// What identifies one image file's contents without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// Path relative to the split folder.
    relative: String,
    bytes: u64,
    modified_ns: u128,
    label: u8,
}

impl FileStamp {
    /// The stamp of the file `name` in the class folder `class` (labelled `label`), from
    /// its metadata.
    pub fn new(class: &str, name: &str, label: u8, meta: &std::fs::Metadata) -> Self {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Self {
            relative: format!("{class}/{name}"),
            bytes: meta.len(),
            modified_ns,
            label,
        }
    }

    /// Path relative to the split folder (`<class>/<file>`).
    pub fn relative(&self) -> &str {
        &self.relative
    }

    pub fn label(&self) -> u8 {
        self.label
    }
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The cache key of `files` decoded under `settings` (the decoding config).
pub fn key(files: &[FileStamp], settings: &impl std::fmt::Debug) -> u64 {
    let settings = format!("{settings:?}");
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, settings.as_bytes());
    for f in files {
        h = fnv1a(h, f.relative.as_bytes());
        h = fnv1a(h, &[0, f.label]);
        h = fnv1a(h, &f.bytes.to_le_bytes());
        h = fnv1a(h, &f.modified_ns.to_le_bytes());
    }
    h
}

/// Where the cache of `split` (a folder of the dataset) lives.
pub fn cache_path(split: &Path) -> PathBuf {
    let name = split
        .file_name()
        .map_or_else(|| "split".into(), |n| n.to_string_lossy().into_owned());
    split
        .parent()
        .unwrap_or(split)
        .join(".kd-cache")
        .join(format!("{name}.kdimg"))
}

/// The cached dataset of `split` if its cache exists and has `key` (`None`: decode). The
/// header is checked before the pixels are read, straight into the dataset's buffer.
pub fn read(split: &Path, key: u64, classes: usize) -> Result<Option<ImageDataset>> {
    let path = cache_path(split);
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Ok(None);
    };
    let mut header = [0u8; HEADER];
    if file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
        return Ok(None);
    }
    let word = |i: usize| -> u64 {
        let at = 8 + 8 * i;
        u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"))
    };
    let [n, c, h, w, k] = [1, 2, 3, 4, 5].map(|i| word(i) as usize);
    let pixels = n * c * h * w;
    let expected_len = (HEADER + n + pixels) as u64;
    let len = file.metadata().map_or(0, |m| m.len());
    if word(0) != key || k != classes || len != expected_len {
        return Ok(None);
    }
    let (mut labels, mut images) = (vec![0u8; n], vec![0u8; pixels]);
    if file.read_exact(&mut labels).is_err() || file.read_exact(&mut images).is_err() {
        return Ok(None);
    }
    let images = Array4::from_shape_vec((n, c, h, w), images).expect("the length was checked");
    ImageDataset::new(images, labels, classes, &path).map(Some)
}

/// Writes the cache of `split` (best effort: a failure is logged).
pub fn write(split: &Path, key: u64, data: &ImageDataset) {
    let path = cache_path(split);
    if let Err(e) = write_file(&path, key, data) {
        tracing::warn!(
            "{}: the decoded images are not cached ({e}); the next run decodes them again",
            path.display()
        );
    }
}

fn write_file(path: &Path, key: u64, data: &ImageDataset) -> std::io::Result<()> {
    let dir = path.parent().expect("a cache path has a parent");
    std::fs::create_dir_all(dir)?;
    let [c, h, w] = data.image_shape();
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        out.write_all(MAGIC)?;
        for v in [
            key,
            data.len() as u64,
            c as u64,
            h as u64,
            w as u64,
            data.classes() as u64,
        ] {
            out.write_all(&v.to_le_bytes())?;
        }
        out.write_all(data.labels())?;
        out.write_all(data.images().as_slice().expect("a standard-layout array"))?;
        out.flush()?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

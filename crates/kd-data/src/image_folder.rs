//! Image-folder datasets in torchvision's `ImageFolder` layout: `dir/train/<class>/*` and,
//! optionally, `dir/val/<class>/*` and `dir/test/<class>/*`, PNG or JPEG files (grayscale or
//! colour), one folder per class. The classes are the training folder's subfolders in
//! sorted order, so label `i` is the `i`-th name.
//!
//! Every image is decoded once — in parallel — to `channels` x `image_size` x `image_size`
//! u8 pixels (resize the shorter side and crop the centre, as torchvision's `Resize(s)` +
//! `CenterCrop(s)`, or resize exactly) and kept in a cache beside the data
//! (`dir/.kd-cache/`, see [`crate::folder_cache`]); a later run with the same files and
//! settings reads the cache instead.
//!
//! A file that does not decode (truncated, zero bytes, not an image) is an error naming every
//! bad file (up to [`NAMED_BAD_FILES`]) before anything trains, or, with
//! `on_bad_image = "skip"`, skipped and counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::imageops::FilterType;
use image::DynamicImage;
use ndarray::Array4;
use serde::{Deserialize, Serialize};

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};
use crate::folder_cache::{self, FileStamp};

/// How many bad files an error names (it counts them all).
pub const NAMED_BAD_FILES: usize = 10;

/// How an image becomes `image_size` x `image_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Resize the shorter side to `image_size`, then crop the centre (torchvision's
    /// `Resize(s)` + `CenterCrop(s)`): no distortion.
    #[default]
    ShorterSideCenterCrop,
    /// Resize both sides to `image_size` (distorts non-square images).
    Exact,
}

/// What to do with an image that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Fail, naming the files, before anything trains.
    #[default]
    Error,
    /// Skip them and say how many.
    Skip,
}

/// Settings of an image-folder dataset (`[data.image_folder]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// Side of the square images the models see.
    pub image_size: usize,
    /// 1 (grayscale) or 3 (RGB); images of the other kind are converted.
    pub channels: usize,
    pub resize: ResizeMode,
    pub on_bad_image: OnBadImage,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: 3,
            resize: ResizeMode::default(),
            on_bad_image: OnBadImage::default(),
        }
    }
}

impl ImageFolderConfig {
    /// Checks the ranges; `key` prefixes error messages.
    pub fn validate(&self, key: &str) -> Result<()> {
        let invalid = |field: &str, expected: &str, got: usize| DataError::InvalidConfig {
            key: format!("{key}.{field}"),
            expected: expected.into(),
            got: got.to_string(),
        };
        if !(1..=4096).contains(&self.image_size) {
            return Err(invalid("image_size", "1 to 4096 pixels", self.image_size));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(invalid("channels", "1 or 3", self.channels));
        }
        Ok(())
    }

    /// `[channels, image_size, image_size]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.image_size, self.image_size]
    }
}

/// The splits of an image folder and its class names.
#[derive(Debug, Clone)]
pub struct FolderSplits {
    pub train: ImageDataset,
    /// `dir/val`, if there is one.
    pub val: Option<ImageDataset>,
    /// `dir/test`, if there is one.
    pub test: Option<ImageDataset>,
    /// Class names in label order.
    pub classes: Vec<String>,
}

/// Reads the image folder at `dir` (decoding, or from its cache).
pub fn load_image_folder(dir: &Path, config: &ImageFolderConfig) -> Result<FolderSplits> {
    config.validate("data.image_folder")?;
    let train_dir = dir.join("train");
    if !train_dir.is_dir() {
        return Err(DataError::MissingDataset {
            dir: dir.to_path_buf(),
            detail: "expected a train/ folder with one subfolder per class (and optionally val/ and test/)".into(),
        });
    }
    let classes = class_folders(&train_dir)?;
    if classes.len() < 2 {
        return Err(DataError::Folder {
            dir: train_dir,
            detail: format!(
                "expected at least two class subfolders, found {}",
                classes.len()
            ),
        });
    }
    // The splits there are. One whose classes differ from train/'s is an error, reported
    // after train/'s own (an empty class there may be the cause).
    let (mut split_dirs, mut optional, mut differing) = (vec![train_dir], Vec::new(), None);
    for name in ["val", "test"] {
        let split = dir.join(name);
        if !split.is_dir() {
            continue;
        }
        let found = class_folders(&split)?;
        if found != classes {
            let missing: Vec<&String> = classes.iter().filter(|c| !found.contains(c)).collect();
            let extra: Vec<&String> = found.iter().filter(|c| !classes.contains(c)).collect();
            differing.get_or_insert(DataError::Folder {
                dir: split,
                detail: format!(
                    "its classes differ from train/'s: missing {missing:?}, not in train/ {extra:?}"
                ),
            });
            continue;
        }
        split_dirs.push(split);
        optional.push(name);
    }
    // Every class folder of every split listed at once, on all cores.
    let folders: Vec<PathBuf> = split_dirs
        .iter()
        .flat_map(|split| classes.iter().map(move |class| split.join(class)))
        .collect();
    let mut listed = parallel_map(&folders, |folder| image_files(folder)).into_iter();
    let mut stamps_by_split = Vec::new();
    for split in &split_dirs {
        stamps_by_split.push(stamps(
            split,
            &classes,
            listed.by_ref().take(classes.len()),
        )?);
        if let Some(error) = differing.take() {
            return Err(error);
        }
    }
    let mut datasets = Vec::new();
    for (split, stamps) in split_dirs.iter().zip(stamps_by_split) {
        datasets.push(load_split(split, &classes, stamps, config)?);
    }
    let mut datasets = datasets.into_iter();
    let train = datasets.next().expect("train/ is loaded first");
    let mut next_if_present = |name| optional.contains(&name).then(|| datasets.next()).flatten();
    let (val, test) = (next_if_present("val"), next_if_present("test"));
    Ok(FolderSplits {
        train,
        val,
        test,
        classes,
    })
}

/// A folder of images without labels (a transfer set): its PNG and JPEG files, and those of
/// its subfolders one level down (labels, if the folders are classes, are not used),
/// decoded under `config` as an image folder's are and cached the same way. Every image is
/// marked [`crate::dataset::UNLABELED`]; `classes` is the labelled data's class count. A
/// missing folder or one with no images is an error naming it.
pub fn load_unlabeled_folder(
    dir: &Path,
    config: &ImageFolderConfig,
    classes: usize,
) -> Result<ImageDataset> {
    config.validate("data.image_folder")?;
    if !dir.is_dir() {
        return Err(DataError::Folder {
            dir: dir.to_path_buf(),
            detail: "not a folder: expected a folder of PNG or JPEG images".into(),
        });
    }
    let mut groups = vec![String::new()];
    groups.extend(
        read_dir(dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.to_string();
                (!name.starts_with('.')).then_some(name)
            }),
    );
    groups[1..].sort();
    let listed = parallel_map(&groups, |group| image_files(&dir.join(group)));
    let mut stamps = Vec::new();
    for (group, images) in groups.iter().zip(listed) {
        for (name, meta) in images? {
            let relative = if group.is_empty() {
                name
            } else {
                format!("{group}/{name}")
            };
            stamps.push(FileStamp::new(".", &relative, 0, &meta));
        }
    }
    if stamps.is_empty() {
        return Err(DataError::Folder {
            dir: dir.to_path_buf(),
            detail: "no PNG or JPEG images in it or in its subfolders".into(),
        });
    }
    let decoded = load_split(dir, &[".".to_string()], stamps, config)?;
    ImageDataset::unlabeled(decoded.into_images(), classes).ok_or_else(|| DataError::Folder {
        dir: dir.to_path_buf(),
        detail: format!("unlabeled images need fewer than 256 classes, the data has {classes}"),
    })
}

/// The class names of an image folder's split folder `dir` (its `train/`, say): the sorted
/// names of its subfolders, hidden ones excluded; an error naming `dir` when it has none.
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    class_folders(dir)
}

/// The sorted names of `dir`'s subfolders (hidden ones, like the cache, excluded).
fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = read_dir(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DataError::Folder {
            dir: dir.to_path_buf(),
            detail: "expected one subfolder per class, found none".into(),
        });
    }
    Ok(names)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()).map_err(io))
        .collect()
}

/// The PNG and JPEG files of `dir`, sorted by name, with their metadata: the listing says
/// what is a file, and each file's metadata is read relative to the open directory (no
/// path walk per file). A name that is not UTF-8 is an error naming the file.
fn image_files(dir: &Path) -> Result<Vec<(String, std::fs::Metadata)>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        if !is_image(Path::new(&name)) {
            continue;
        }
        let Some(name) = name.to_str().map(str::to_string) else {
            return Err(DataError::Folder {
                dir: dir.to_path_buf(),
                detail: format!("{name:?}: expected a UTF-8 file name"),
            });
        };
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        let meta = if kind.is_symlink() {
            std::fs::metadata(entry.path()).map_err(io(&entry.path()))?
        } else {
            entry.metadata().map_err(io(&entry.path()))?
        };
        if meta.is_file() {
            out.push((name, meta));
        }
    }
    // Byte order of the names (comparing them as paths, component by component, costs more
    // than listing them).
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `f` of every item, in order, on all cores: each worker takes the next item as it finishes
/// one, so items of unequal cost (class folders of different sizes) keep every core busy.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Whether `path` names a PNG or JPEG file by its extension.
fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// The stamps of a split's files, label by label, from its class folders' listings (in
/// `classes` order); an empty class is an error naming its folder.
fn stamps(
    split: &Path,
    classes: &[String],
    listed: impl Iterator<Item = Result<Vec<(String, std::fs::Metadata)>>>,
) -> Result<Vec<FileStamp>> {
    let mut stamps = Vec::new();
    for (label, (class, images)) in classes.iter().zip(listed).enumerate() {
        let images = images?;
        if images.is_empty() {
            return Err(DataError::Folder {
                dir: split.join(class),
                detail: "an empty class: expected PNG or JPEG files".into(),
            });
        }
        for (name, meta) in images {
            stamps.push(FileStamp::new(class, &name, label as u8, &meta));
        }
    }
    Ok(stamps)
}

/// One split folder's images, from the cache when it is current, decoded otherwise.
fn load_split(
    split: &Path,
    classes: &[String],
    stamps: Vec<FileStamp>,
    config: &ImageFolderConfig,
) -> Result<ImageDataset> {
    let key = folder_cache::key(&stamps, config);
    if let Some(cached) = folder_cache::read(split, key, classes.len())? {
        tracing::info!(
            "{}: {} images from the cache",
            split.display(),
            cached.len()
        );
        return Ok(cached);
    }
    let files: Vec<(PathBuf, u8)> = stamps
        .iter()
        .map(|s| (split.join(s.relative()), s.label()))
        .collect();
    let started = std::time::Instant::now();
    let decoded = decode_all(&files, config);
    let (mut pixels, mut labels, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for ((path, label), result) in files.iter().zip(decoded) {
        match result {
            Ok(p) => {
                pixels.extend_from_slice(&p);
                labels.push(*label);
            }
            Err(reason) => bad.push((path.clone(), reason)),
        }
    }
    if !bad.is_empty() {
        if config.on_bad_image == OnBadImage::Error || labels.is_empty() {
            return Err(DataError::BadImages {
                dir: split.to_path_buf(),
                count: bad.len(),
                named: bad
                    .iter()
                    .take(NAMED_BAD_FILES)
                    .map(|(p, why)| format!("{}: {why}", p.display()))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        tracing::warn!(
            "{}: {} images that do not decode skipped (on_bad_image = \"skip\")",
            split.display(),
            bad.len()
        );
    }
    let [c, h, w] = config.image_shape();
    let images = Array4::from_shape_vec((labels.len(), c, h, w), pixels)
        .expect("every decoded image has the configured shape");
    let dataset = ImageDataset::new(images, labels, classes.len(), split)?;
    tracing::info!(
        "{}: {} images decoded in {:.1}s",
        split.display(),
        dataset.len(),
        started.elapsed().as_secs_f64()
    );
    folder_cache::write(split, key, &dataset);
    Ok(dataset)
}

/// Decodes every file on all cores, in order.
fn decode_all(
    files: &[(PathBuf, u8)],
    config: &ImageFolderConfig,
) -> Vec<std::result::Result<Vec<u8>, String>> {
    let total = files.len();
    let done = AtomicUsize::new(0);
    parallel_map(files, |(path, _)| {
        let result = decode(path, config);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(10_000) {
            tracing::info!("decoded {n} of {total} images");
        }
        result
    })
}

/// One image as `channels` x `image_size` x `image_size` u8 pixels, channel-major.
fn decode(path: &Path, config: &ImageFolderConfig) -> std::result::Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Err("an empty file (0 bytes)".into());
    }
    let image = image::load_from_memory(&bytes).map_err(|e| e.to_string())?;
    let s = config.image_size as u32;
    let sized = match config.resize {
        ResizeMode::Exact => image.resize_exact(s, s, FilterType::Triangle),
        ResizeMode::ShorterSideCenterCrop => {
            let (w, h) = (image.width(), image.height());
            let scale = s as f64 / w.min(h) as f64;
            let (nw, nh) = (
                ((w as f64 * scale).round() as u32).max(s),
                ((h as f64 * scale).round() as u32).max(s),
            );
            let resized = if (nw, nh) == (w, h) {
                image
            } else {
                image.resize_exact(nw, nh, FilterType::Triangle)
            };
            resized.crop_imm((nw - s) / 2, (nh - s) / 2, s, s)
        }
    };
    Ok(channel_major(&sized, config.channels))
}

/// The pixels as `[c, h, w]` bytes. Colour becomes gray as PIL's `convert("L")` makes it
/// (ITU-R 601-2 luma, `(19595 R + 38470 G + 7471 B + 2^15) >> 16`), so that a folder reads
/// as torchvision reads it.
fn channel_major(image: &DynamicImage, channels: usize) -> Vec<u8> {
    if channels == 1 {
        if !image.color().has_color() {
            return image.to_luma8().into_raw();
        }
        return image
            .to_rgb8()
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16) as u8
            })
            .collect();
    }
    let rgb = image.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut out = vec![0u8; 3 * w * h];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = px.0[c];
        }
    }
    out
}

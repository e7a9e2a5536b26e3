//! The transfer set (Hinton, Vinyals & Dean 2015, sections 2 and 6): images without labels
//! that the distilled student learns from through the teacher's soft targets alone — the
//! training images outside the labelled subset (`student.unlabeled = "rest"`) or a folder of
//! images. The scratch student never sees them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_data::{
    load_unlabeled_folder, random_subset, random_subset_and_rest, DatasetKind, ImageDataset,
    ImageFolderConfig,
};

use super::data::{student_images, RunData};
use crate::config::RunConfig;
use crate::seeds::{self, Data};

/// Where a run's unlabeled images come from.
enum Source {
    Rest,
    Folder(PathBuf),
}

/// The students' training images.
pub(crate) struct StudentSets {
    /// The labelled images both students learn from: the training split, or a seeded
    /// subset of `student.train_images` of it.
    pub labelled: ImageDataset,
    /// The distilled student's: `labelled`, then the unlabeled images, if any.
    pub distill: ImageDataset,
}

/// The students' training images as the config chooses them; errors name the file and key.
pub(crate) fn student_sets(
    cfg: &RunConfig,
    data: &RunData,
    config_path: &Path,
) -> Result<StudentSets> {
    student_images(cfg, data, config_path)?;
    let (labelled, rest) = match cfg.student.train_images {
        0 => (data.train.clone(), None),
        n => {
            let (subset, rest) = random_subset_and_rest(
                &data.train,
                n,
                seeds::data(Data::LabelledSubset, cfg.seed),
            )?;
            (subset, Some(rest))
        }
    };
    let distill = match unlabeled_images(cfg, data, rest, config_path)? {
        Some(unlabeled) => ImageDataset::concat(&[labelled.clone(), unlabeled])
            .context("unlabeled images of another shape than the training images")?,
        None => labelled.clone(),
    };
    Ok(StudentSets { labelled, distill })
}

/// `student.unlabeled` read: `""` none, `"rest"`, or a folder.
fn source(value: &str) -> Option<Source> {
    match value {
        "" => None,
        "rest" => Some(Source::Rest),
        path => Some(Source::Folder(PathBuf::from(path))),
    }
}

/// The run's unlabeled images (`None` when the config names none): `rest` is what the
/// labelled subset left out of the training split, `None` when the students take all of it.
/// At most `student.unlabeled_images` of them, a seeded subset.
pub(super) fn unlabeled_images(
    cfg: &RunConfig,
    data: &RunData,
    rest: Option<ImageDataset>,
    config_path: &Path,
) -> Result<Option<ImageDataset>> {
    let s = &cfg.student;
    let at = config_path.display();
    let Some(source) = source(&s.unlabeled) else {
        if s.unlabeled_images > 0 {
            bail!("{at}: student.unlabeled_images is set but student.unlabeled names no images (expected \"rest\" or a folder)");
        }
        return Ok(None);
    };
    let images = match source {
        Source::Rest => match rest {
            // Their labels are taken away (the pixels moved, not copied): only the teacher
            // teaches them.
            Some(rest) if !rest.is_empty() => {
                let classes = rest.classes();
                ImageDataset::unlabeled(rest.into_images(), classes).with_context(|| {
                    format!("{at}: student.unlabeled: unlabeled images need fewer than 256 classes")
                })?
            }
            _ => bail!(
                "{at}: student.unlabeled = \"rest\": expected student.train_images below the {} training images (the rest are the unlabeled ones), got {}",
                data.train.len(),
                s.train_images
            ),
        },
        Source::Folder(dir) => {
            let folder = folder_settings(cfg, data)
                .with_context(|| format!("{at}: student.unlabeled"))?;
            let images = load_unlabeled_folder(&dir, &folder, data.train.classes())
                .with_context(|| format!("{at}: student.unlabeled"))?;
            refuse_test_images(&images, &data.test, &dir, "test")?;
            refuse_test_images(&images, &data.val, &dir, "validation")?;
            images
        }
    };
    Ok(Some(match s.unlabeled_images {
        n if n == 0 || n >= images.len() => images,
        n => random_subset(&images, n, seeds::data(Data::UnlabeledSubset, cfg.seed))?,
    }))
}

/// How a folder's images are decoded to the data's shape: an image folder's own settings,
/// or the built-in dataset's channels and (square) size.
fn folder_settings(cfg: &RunConfig, data: &RunData) -> Result<ImageFolderConfig> {
    if cfg.data.dataset == DatasetKind::ImageFolder {
        return Ok(cfg.data.image_folder.clone());
    }
    let [channels, h, w] = data.train.image_shape();
    if h != w {
        bail!("a folder of unlabeled images needs square images; the data's are {h}x{w}");
    }
    Ok(ImageFolderConfig {
        image_size: h,
        channels,
        ..ImageFolderConfig::default()
    })
}

/// Each image's pixels.
fn pixels(d: &ImageDataset) -> impl Iterator<Item = &[u8]> {
    let per = d.image_shape().iter().product::<usize>();
    let all = d.images().as_slice().expect("datasets are contiguous");
    all.chunks_exact(per.max(1))
}

/// An error when any unlabeled image has exactly the pixels of an image of `test` (the test
/// or validation set, named by `which`): a student taught on it would be measured — or
/// early-stopped — on what it was taught.
fn refuse_test_images(
    images: &ImageDataset,
    test: &ImageDataset,
    dir: &Path,
    which: &str,
) -> Result<()> {
    let digest = |p: &[u8]| {
        let mut h = DefaultHasher::new();
        p.hash(&mut h);
        h.finish()
    };
    let mut test_digests: HashMap<u64, Vec<&[u8]>> = HashMap::new();
    for p in pixels(test) {
        test_digests.entry(digest(p)).or_default().push(p);
    }
    let shared = pixels(images)
        .filter(|p| {
            test_digests
                .get(&digest(p))
                .is_some_and(|ts| ts.contains(p))
        })
        .count();
    if shared > 0 {
        bail!(
            "{}: {shared} of its {} unlabeled images are {which} images (the same pixels): a student taught on them would be measured on what it was taught",
            dir.display(),
            images.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    /// Four 1x4x4 images, image `i` filled with `10 * i`, labels 0, 1, 0, 1.
    fn images(offset: u8) -> ImageDataset {
        let pixels = (0..4u8)
            .flat_map(|i| [offset + 10 * i; 16])
            .collect::<Vec<_>>();
        let images = Array4::from_shape_vec((4, 1, 4, 4), pixels).unwrap();
        ImageDataset::new(images, vec![0, 1, 0, 1], 2, Path::new("mem")).unwrap()
    }

    fn data() -> RunData {
        RunData {
            train: images(0),
            val: images(1),
            test: images(2),
            class_names: None,
        }
    }

    fn config(unlabeled: &str, unlabeled_images: usize, train_images: usize) -> RunConfig {
        let mut cfg = RunConfig::default();
        cfg.student.unlabeled = unlabeled.into();
        cfg.student.unlabeled_images = unlabeled_images;
        cfg.student.train_images = train_images;
        cfg
    }

    fn error(cfg: &RunConfig, rest: Option<ImageDataset>) -> String {
        let err = unlabeled_images(cfg, &data(), rest, Path::new("run.toml")).unwrap_err();
        format!("{err:#}")
    }

    /// Writes a 4x4 gray PNG of `value` at `path`.
    fn png(path: &Path, value: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(4, 4, image::Luma([value]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn the_rest_loses_its_labels_and_is_capped_by_a_seeded_subset() {
        let cfg = config("rest", 3, 1);
        let rest = unlabeled_images(&cfg, &data(), Some(images(5)), Path::new("run.toml"))
            .unwrap()
            .unwrap();
        assert_eq!((rest.len(), rest.labelled_len()), (3, 0));
        assert!(
            unlabeled_images(&config("", 0, 1), &data(), None, Path::new("r"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sources_that_cannot_be_used_are_one_line_errors() {
        let err = error(&config("rest", 0, 0), None);
        assert!(
            err.contains("student.unlabeled = \"rest\"") && err.contains("train_images"),
            "{err}"
        );
        let err = error(&config("", 100, 0), None);
        assert!(err.contains("student.unlabeled_images"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let err = error(&config(missing.to_str().unwrap(), 0, 0), None);
        assert!(
            err.contains("nowhere") && err.contains("not a folder"),
            "{err}"
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = error(&config(empty.to_str().unwrap(), 0, 0), None);
        assert!(
            err.contains("empty") && err.contains("no PNG or JPEG"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_folder_is_read_at_the_datas_shape_and_test_images_in_it_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("extra");
        png(&folder.join("a.png"), 200);
        png(&folder.join("more/b.png"), 201);
        let cfg = config(folder.to_str().unwrap(), 0, 0);
        let got = unlabeled_images(&cfg, &data(), None, Path::new("run.toml"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.len(), got.labelled_len(), got.image_shape()),
            (2, 0, [1, 4, 4])
        );
        // A copy of test image 1 (all pixels 2 + 10).
        png(&folder.join("c.png"), 12);
        let err = error(&cfg, None);
        assert!(
            err.contains("1 of its 3 unlabeled images are test images"),
            "{err}"
        );
    }
}

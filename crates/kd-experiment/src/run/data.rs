//! The run's data: the config's dataset, split into training, validation and test images.

use std::path::Path;

use anyhow::{bail, Result};
use kd_data::{holdout_split, ImageDataset};

use crate::config::RunConfig;
use crate::seeds::{self, Data};

/// The three splits used by a run.
#[derive(Clone)]
pub(crate) struct RunData {
    pub train: ImageDataset,
    pub val: ImageDataset,
    pub test: ImageDataset,
    /// Class names the data brings (an image folder's), in label order.
    pub class_names: Option<Vec<String>>,
}

/// How many training images the students learn from: `student.train_images`, or the whole
/// training split (0); more than the split is an error naming the key.
pub(crate) fn student_images(cfg: &RunConfig, data: &RunData, config_path: &Path) -> Result<usize> {
    match cfg.student.train_images {
        0 => Ok(data.train.len()),
        n if n > data.train.len() => bail!(
            "{}: student.train_images: expected at most {} (the training split), got {n}",
            config_path.display(),
            data.train.len()
        ),
        n => Ok(n),
    }
}

/// Reads the config's dataset and splits it as the run does.
pub(crate) fn load_data(cfg: &RunConfig) -> Result<RunData> {
    let d = &cfg.data;
    let started = std::time::Instant::now();
    let splits = d.load()?;
    tracing::info!(
        "{}: {} data read in {:.2}s",
        d.dir().display(),
        d.dataset.name(),
        started.elapsed().as_secs_f64()
    );
    let limit = |ds: ImageDataset, n: usize| {
        if n == 0 || n >= ds.len() {
            ds
        } else {
            ds.select(&(0..n).collect::<Vec<_>>())
        }
    };
    let train_all = limit(splits.train, d.train_limit);
    let test = limit(splits.test, d.test_limit);
    // A validation split the data brings (an image folder's val/) is used as it is;
    // otherwise a seeded hold-out of the training images, or the test set (holdout 0).
    let (train, val) = match splits.val {
        Some(val) => (train_all, val),
        None if d.validation_holdout == 0 => (train_all, test.clone()),
        None => {
            let seed = seeds::data(Data::Holdout, cfg.seed);
            holdout_split(&train_all, d.validation_holdout, seed)?
        }
    };
    d.transform
        .validate("data.transform", train.image_shape())?;
    Ok(RunData {
        train,
        val,
        test,
        class_names: splits.class_names,
    })
}

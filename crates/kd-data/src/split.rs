//! A seeded hold-out split of a training set into training and validation parts, so that
//! early stopping and learning-rate decisions never look at the test set.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};

/// Moves `validation` randomly chosen images (seeded) out of `data` into a validation set.
/// Returns `(train, validation)`; both keep the original relative order of their images.
pub fn holdout_split(
    data: &ImageDataset,
    validation: usize,
    seed: u64,
) -> Result<(ImageDataset, ImageDataset)> {
    if validation == 0 || validation >= data.len() {
        return Err(DataError::InvalidConfig {
            key: "data.validation_holdout".into(),
            expected: format!("between 1 and {} images", data.len().saturating_sub(1)),
            got: validation.to_string(),
        });
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (val, train) = order.split_at_mut(validation);
    val.sort_unstable();
    train.sort_unstable();
    Ok((data.select(train), data.select(val)))
}

/// A seeded random subset of `size` images of `data` (kept in their original order), e.g. a
/// small labelled set for a student.
pub fn random_subset(data: &ImageDataset, size: usize, seed: u64) -> Result<ImageDataset> {
    random_subset_and_rest(data, size, seed).map(|(subset, _)| subset)
}

/// [`random_subset`] and the images it left out (in their original order): the labelled
/// few and the rest, which a distilled student can still learn from through the teacher.
pub fn random_subset_and_rest(
    data: &ImageDataset,
    size: usize,
    seed: u64,
) -> Result<(ImageDataset, ImageDataset)> {
    if size == 0 || size > data.len() {
        return Err(DataError::InvalidConfig {
            key: "student.train_images".into(),
            expected: format!("between 1 and {} images", data.len()),
            got: size.to_string(),
        });
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (chosen, rest) = order.split_at_mut(size);
    chosen.sort_unstable();
    rest.sort_unstable();
    Ok((data.select(chosen), data.select(rest)))
}

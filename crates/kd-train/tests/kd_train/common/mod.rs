//! Helpers shared by kd-train's tests.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use kd_data::ImageDataset;
use ndarray::Array4;

/// 8x8 images of 4 classes: class `k` lights quadrant `k` (pixels from `bright` up), with
/// deterministic noise.
pub fn quadrants(n: usize, salt: usize, bright: u8) -> ImageDataset {
    let mut px = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = (i * 5 + salt) % 4;
        labels.push(k as u8);
        for y in 0..8 {
            for x in 0..8 {
                let noise = ((i * 29 + y * 11 + x * 7 + salt) % 90) as u8;
                px.push(if (y / 4) * 2 + x / 4 == k {
                    bright + noise
                } else {
                    noise
                });
            }
        }
    }
    let images = Array4::from_shape_vec((n, 1, 8, 8), px).unwrap();
    ImageDataset::new(images, labels, 4, Path::new("quadrants")).unwrap()
}

/// The crate's tests run in one process, and fits draw from libtorch's one global generator
/// (initialization, dropout): a test that seeds it or builds a model holds this lock, so that
/// no other test draws between its seed and its comparisons.
pub fn global_rng() -> MutexGuard<'static, ()> {
    static GLOBAL_RNG: Mutex<()> = Mutex::new(());
    GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

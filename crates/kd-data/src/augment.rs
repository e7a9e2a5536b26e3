//! Training-time augmentation on `u8` images, done while a batch is gathered: a random
//! horizontal flip and a random crop after zero padding (the "pad 4, crop 32" of He et al.
//! 2016, sized here by `crop_padding`). Draws come from the loader's per-epoch ChaCha8
//! stream, so a seeded run augments identically every time.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations to apply; everything off by default (the seed uses none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Mirror each image left-right with probability 1/2.
    pub hflip: bool,
    /// Shift each image by up to this many pixels in each direction (zero fill), i.e. a
    /// random crop of the image padded by `crop_padding`.
    pub crop_padding: usize,
}

impl AugmentConfig {
    /// Whether any augmentation is on.
    pub fn is_enabled(&self) -> bool {
        self.hflip || self.crop_padding > 0
    }

    /// Appends the augmented copy of one image (`[c, h, w]` bytes) to `out`.
    pub fn push_image(
        &self,
        image: &[u8],
        [c, h, w]: [usize; 3],
        rng: &mut ChaCha8Rng,
        out: &mut Vec<u8>,
    ) {
        let flip = self.hflip && rng.random::<bool>();
        let p = self.crop_padding as i64;
        let (dy, dx) = if p > 0 {
            (
                rng.random_range(-p..=p) as isize,
                rng.random_range(-p..=p) as isize,
            )
        } else {
            (0, 0)
        };
        for ch in 0..c {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for y in 0..h as isize {
                for x in 0..w as isize {
                    // Output pixel (y, x) reads the source at (y + dy, x' + dx), where x' is
                    // x mirrored when flipping.
                    let xs = if flip { w as isize - 1 - x } else { x };
                    let (sy, sx) = (y + dy, xs + dx);
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    out.push(if inside {
                        plane[sy as usize * w + sx as usize]
                    } else {
                        0
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn off_is_the_identity() {
        let img: Vec<u8> = (0..12).collect();
        let mut out = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        AugmentConfig::default().push_image(&img, [1, 3, 4], &mut rng, &mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn flips_mirror_rows_and_crops_shift_with_zero_fill() {
        let img: Vec<u8> = (1..=12).collect(); // 3 rows of 4
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let flip = AugmentConfig {
            hflip: true,
            crop_padding: 0,
        };
        let (mut flipped, mut kept) = (0, 0);
        for _ in 0..64 {
            let mut out = Vec::new();
            flip.push_image(&img, [1, 3, 4], &mut rng, &mut out);
            if out == img {
                kept += 1;
            } else {
                assert_eq!(out, [4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9]);
                flipped += 1;
            }
        }
        assert!(flipped > 10 && kept > 10, "{flipped} / {kept}");
        let crop = AugmentConfig {
            hflip: false,
            crop_padding: 1,
        };
        for _ in 0..32 {
            let mut out = Vec::new();
            crop.push_image(&img, [1, 3, 4], &mut rng, &mut out);
            // Every pixel is either zero fill or a source pixel; at most one row and one
            // column are lost.
            assert!(out.iter().all(|&v| v == 0 || img.contains(&v)));
            assert!(out.iter().filter(|&&v| v != 0).count() >= 6);
        }
    }
}

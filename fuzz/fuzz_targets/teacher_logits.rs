//! Teacher logits files (`teacher.logits`): `kd_experiment::logits_file::TeacherLogits::parse`
//! (the safetensors header, kd's format and split checks, the tensors) for a run of three
//! two-image splits of blank 1x2x2 images labelled 0 and 1, the images the seed corpus's
//! file was made for.
#![no_main]

use std::path::Path;

use kd_data::ImageDataset;
use kd_experiment::logits_file::TeacherLogits;
use libfuzzer_sys::fuzz_target;

fn split() -> ImageDataset {
    let images = ndarray::Array4::<u8>::zeros((2, 1, 2, 2));
    ImageDataset::new(images, vec![0, 1], 2, Path::new("fuzz")).expect("a valid split")
}

fuzz_target!(|data: &[u8]| {
    let (train, val, test) = (split(), split(), split());
    let _ = TeacherLogits::parse(data, Path::new("fuzz.kdl"), [&train, &val, &test], 2);
});

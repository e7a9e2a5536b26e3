//! safetensors files: kd's metadata reader (`kd_models::metadata`) and the full tensor
//! reader (`kd_models::tensor_file`, what model loading and checkpoints go through).
#![no_main]

use kd_models::{metadata, tensor_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    let _ = metadata::parse_metadata(data, path);
    let _ = tensor_file::parse_tensors(data, path);
});

//! The safetensors fuzzer's corpus (`fuzz/corpus/safetensors`) and any inputs that once
//! crashed it (`fuzz/regressions/safetensors`), replayed through kd's metadata and tensor
//! readers on every test run: an error or a result, never a panic.

use kd_models::{metadata, tensor_file};

#[test]
fn safetensors_corpus_replays_without_panics() {
    let files = kd_testkit::fuzz_inputs(env!("CARGO_MANIFEST_DIR"), "safetensors");
    assert!(!files.is_empty(), "the safetensors corpus is missing");
    let mut whole = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let _ = metadata::parse_metadata(&bytes, file);
        if tensor_file::parse_tensors(&bytes, file).is_ok() {
            whole += 1;
        }
    }
    assert!(whole >= 1, "the seed model file reads");
}

//! The fuzzers' corpora (`fuzz/corpus/idx`, `fuzz/corpus/cifar`) and any inputs that once
//! crashed them (`fuzz/regressions/<target>`), replayed through the readers on every test
//! run: each gives an array or an error, never a panic, and what parses is consistent.

use std::path::PathBuf;

use kd_data::cifar::{parse_cifar, CifarLabel};
use kd_data::idx::decode_idx;

/// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`.
fn inputs(target: &str) -> Vec<PathBuf> {
    kd_testkit::fuzz_inputs(env!("CARGO_MANIFEST_DIR"), target)
}

#[test]
fn idx_corpus_replays_without_panics() {
    let files = inputs("idx");
    assert!(files.len() >= 3, "the idx corpus is missing");
    let mut parsed = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        if let Ok(array) = decode_idx(&bytes, file) {
            assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
            parsed += 1;
        }
    }
    assert!(parsed >= 1, "the seed files parse");
}

#[test]
fn cifar_corpus_replays_without_panics() {
    let files = inputs("cifar");
    assert!(files.len() >= 2, "the cifar corpus is missing");
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let Some((&choice, bytes)) = data.split_first() else {
            continue;
        };
        let label = match choice % 3 {
            0 => CifarLabel::Cifar10,
            1 => CifarLabel::Cifar100Coarse,
            _ => CifarLabel::Cifar100Fine,
        };
        if let Ok(dataset) = parse_cifar(bytes, label, file) {
            assert_eq!(dataset.len() * label.record_bytes(), bytes.len());
        }
    }
}

//! CIFAR-10/100 binary batches, as `kd_data::cifar::read_cifar` reads them; the first byte
//! picks the label layout.
#![no_main]

use kd_data::cifar::{parse_cifar, CifarLabel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let label = match choice % 3 {
        0 => CifarLabel::Cifar10,
        1 => CifarLabel::Cifar100Coarse,
        _ => CifarLabel::Cifar100Fine,
    };
    let path = std::path::Path::new("fuzz.bin");
    if let Ok(dataset) = parse_cifar(bytes, label, path) {
        assert_eq!(dataset.len() * label.record_bytes(), bytes.len());
    }
});

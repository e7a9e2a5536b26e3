//! Real Fashion-MNIST, when `cargo xtask fetch-data` has put it under `data/fashion-mnist`.
//! Skips (with the reason printed) when it is absent.

use std::path::PathBuf;

use kd_data::load_mnist_family;

#[test]
fn real_fashion_mnist_has_the_published_shape_and_balance() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        eprintln!(
            "SKIPPED: {} has no Fashion-MNIST (run `cargo xtask fetch-data`)",
            dir.display()
        );
        return;
    }
    let s = load_mnist_family(&dir).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(s.train.image_shape(), [1, 28, 28]);
    // The dataset is balanced: 6,000 training and 1,000 test images per class.
    for (data, per_class) in [(&s.train, 6000), (&s.test, 1000)] {
        let mut counts = [0usize; 10];
        for &l in data.labels() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
}

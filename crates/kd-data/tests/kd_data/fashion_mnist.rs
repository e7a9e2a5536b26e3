//! Real Fashion-MNIST, when `cargo xtask fetch-data` has put it under `data/fashion-mnist`.
//! Without it the test fails under CI and is reported as skipped elsewhere (`kd-testkit`).

use kd_data::load_mnist_family;

#[test]
fn real_fashion_mnist_has_the_published_shape_and_balance() {
    let Some(dir) = kd_testkit::require(
        "real_fashion_mnist_has_the_published_shape_and_balance",
        kd_testkit::fashion_mnist(env!("CARGO_MANIFEST_DIR")),
        "no Fashion-MNIST in data/fashion-mnist (run `cargo xtask fetch-data`)",
    ) else {
        return;
    };
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

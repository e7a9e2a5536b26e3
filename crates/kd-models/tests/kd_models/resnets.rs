//! The distillation benchmarks' ResNets and wide ResNets: parameter counts equal to the
//! reference definitions (RepDistiller's `models/resnet.py` and `models/wrn.py`), PyTorch's
//! parameter names, and logits for 1- and 3-channel inputs of CIFAR and Fashion-MNIST sizes.
//!
//! The expected counts come from this Python, which counts the reference modules' parameters
//! layer by layer (conv weights without bias, BN weight and bias, the dense layer); its
//! 100-class figures are the ones the CRD paper (Tian et al. 2020) tabulates (resnet32x4
//! 7.43M, wrn_40_2 2.26M, resnet8x4 1.23M, resnet56 0.86M, resnet110 1.74M, resnet20 0.28M,
//! wrn_16_2 0.70M, wrn_40_1 0.57M):
//!
//! ```python
//! def resnet(depth, f, classes, c=3):
//!     n = (depth - 2) // 6; total = c * f[0] * 9 + 2 * f[0]; cin = f[0]
//!     for p, stride in [(f[1], 1), (f[2], 2), (f[3], 2)]:
//!         for i in range(n):
//!             s = stride if i == 0 else 1
//!             total += cin * p * 9 + 2 * p + p * p * 9 + 2 * p
//!             if s != 1 or cin != p: total += cin * p + 2 * p
//!             cin = p
//!     return total + cin * classes + classes
//! def wrn(depth, k, classes, c=3):
//!     n = (depth - 4) // 6; total = c * 16 * 9; cin = 16
//!     for p in [16 * k, 32 * k, 64 * k]:
//!         for i in range(n):
//!             total += 2 * cin + cin * p * 9 + 2 * p + p * p * 9
//!             if cin != p: total += cin * p
//!             cin = p
//!     return total + 2 * cin + cin * classes + classes
//! ```

use kd_models::{Model, ModelConfig, ResNetConfig, WrnConfig};
use tch::{Device, Kind, Tensor};

const SMALL: [usize; 4] = [16, 16, 32, 64];
const X4: [usize; 4] = [32, 64, 128, 256];

/// (name, config, parameters for 100 classes on RGB, for 10 classes on grayscale)
fn benchmarks() -> Vec<(&'static str, ModelConfig, i64, i64)> {
    let resnet = |depth, filters| ModelConfig::ResNet(ResNetConfig { depth, filters });
    let wrn = |depth, widen_factor| {
        ModelConfig::Wrn(WrnConfig {
            depth,
            widen_factor,
            dropout: 0.0,
        })
    };
    vec![
        ("resnet8", resnet(8, SMALL), 83_892, 77_754),
        ("resnet14", resnet(14, SMALL), 181_108, 174_970),
        ("resnet20", resnet(20, SMALL), 278_324, 272_186),
        ("resnet32", resnet(32, SMALL), 472_756, 466_618),
        ("resnet44", resnet(44, SMALL), 667_188, 661_050),
        ("resnet56", resnet(56, SMALL), 861_620, 855_482),
        ("resnet110", resnet(110, SMALL), 1_736_564, 1_730_426),
        ("resnet8x4", resnet(8, X4), 1_233_540, 1_209_834),
        ("resnet32x4", resnet(32, X4), 7_433_860, 7_410_154),
        ("wrn_16_1", wrn(16, 1), 180_916, 174_778),
        ("wrn_16_2", wrn(16, 2), 703_284, 691_386),
        ("wrn_40_1", wrn(40, 1), 569_780, 563_642),
        ("wrn_40_2", wrn(40, 2), 2_255_156, 2_243_258),
    ]
}

#[test]
fn parameter_counts_equal_the_reference_definitions() {
    for (name, config, rgb_100, gray_10) in benchmarks() {
        assert_eq!(config.describe(), name);
        let rgb = Model::new(&config, 3, 32, 100, Device::Cpu).unwrap();
        assert_eq!(
            rgb.trainable_parameters() as i64,
            rgb_100,
            "{name}, RGB, 100 classes"
        );
        let gray = Model::new(&config, 1, 28, 10, Device::Cpu).unwrap();
        assert_eq!(
            gray.trainable_parameters() as i64,
            gray_10,
            "{name}, gray, 10 classes"
        );
    }
}

#[test]
fn parameters_carry_pytorchs_names() {
    let names = |config: &ModelConfig| -> Vec<String> {
        let model = Model::new(config, 3, 32, 10, Device::Cpu).unwrap();
        let mut names: Vec<String> = model.var_store().variables().into_keys().collect();
        names.sort();
        names
    };
    let resnet8x4 = names(&ModelConfig::ResNet(ResNetConfig::default()));
    for key in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer3.0.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(
            resnet8x4.contains(&key.to_string()),
            "resnet8x4 lacks {key}"
        );
    }
    let wrn = names(&ModelConfig::Wrn(WrnConfig {
        depth: 16,
        widen_factor: 2,
        dropout: 0.0,
    }));
    for key in [
        "conv1.weight",
        "block1.layer.0.bn1.weight",
        "block1.layer.0.convShortcut.weight",
        "block3.layer.1.conv2.weight",
        "bn1.running_var",
        "fc.bias",
    ] {
        assert!(wrn.contains(&key.to_string()), "wrn_16_2 lacks {key}");
    }
    // wrn_16_1's first group keeps 16 channels: no projection there.
    let wrn_16_1 = names(&ModelConfig::Wrn(WrnConfig {
        depth: 16,
        widen_factor: 1,
        dropout: 0.0,
    }));
    assert!(!wrn_16_1.contains(&"block1.layer.0.convShortcut.weight".to_string()));
}

#[test]
fn logits_for_cifar_and_fashion_mnist_inputs_and_the_batch_norm_modes_differ() {
    tch::manual_seed(0);
    for (name, config, _, _) in benchmarks()
        .into_iter()
        .filter(|b| b.0.ends_with("8x4") || b.0 == "wrn_16_1")
    {
        for (c, hw) in [(3, 32), (1, 28)] {
            let model = Model::new(&config, c, hw, 10, Device::Cpu).unwrap();
            let x = Tensor::rand(
                [4, c as i64, hw as i64, hw as i64],
                (Kind::Float, Device::Cpu),
            );
            let eval = tch::no_grad(|| model.forward_t(&x, false));
            assert_eq!(eval.size(), [4, 10], "{name} on {c}x{hw}x{hw}");
            assert!(eval.isfinite().all().int64_value(&[]) == 1, "{name}");
            // Training mode normalizes by the batch's statistics, not the running ones.
            let train = tch::no_grad(|| model.forward_t(&x, true));
            assert!(
                !train.allclose(&eval, 1e-5, 1e-6, false),
                "{name}: BN modes agree"
            );
        }
    }
}

#[test]
fn depths_off_the_pattern_are_refused_naming_the_key() {
    let bad = ModelConfig::ResNet(ResNetConfig {
        depth: 10,
        filters: SMALL,
    });
    let err = bad.validate("student.model", 32).unwrap_err().to_string();
    assert!(
        err.contains("student.model.depth") && err.contains("6n + 2"),
        "{err}"
    );
    let bad = ModelConfig::Wrn(WrnConfig {
        depth: 18,
        ..WrnConfig::default()
    });
    let err = bad.validate("teacher.model", 32).unwrap_err().to_string();
    assert!(
        err.contains("teacher.model.depth") && err.contains("6n + 4"),
        "{err}"
    );
}

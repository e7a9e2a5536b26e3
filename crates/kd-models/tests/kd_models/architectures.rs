//! Architectures: parameter counts against Keras' and PyTorch's, PyTorch-style parameter
//! names, output shapes, and safetensors save/load.

use kd_models::{CnnConfig, Model, ModelConfig, StudentConfig};
use tch::{Device, Kind, Tensor};

/// The seed's student for 32x32x3 inputs and 10 classes.
fn seed_student() -> Model {
    Model::new(
        &ModelConfig::Student(StudentConfig::default()),
        3,
        32,
        10,
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn seed_student_has_the_parameter_count_keras_printed() {
    // The notebook's `student_model.summary()`: "Total params: 519,434" for 32x32x3 inputs.
    let m = seed_student();
    assert_eq!(m.trainable_parameters(), 519_434);
    let logits = m.forward_t(
        &Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(logits.size(), vec![2, 10]);
}

#[test]
fn student_parameter_names_follow_pytorch_sequential_numbering() {
    let cfg = StudentConfig {
        blocks: 2,
        convs_per_block: 2,
        width: 8,
    };
    let m = Model::new(&ModelConfig::Student(cfg), 1, 28, 10, Device::Cpu).unwrap();
    let mut names: Vec<String> = m.var_store().variables().into_keys().collect();
    names.sort();
    // nn.Sequential(conv, relu, conv, relu, pool, conv, relu, conv, relu, pool): convs at 0, 2, 5, 7.
    assert_eq!(
        names,
        [
            "classifier.bias",
            "classifier.weight",
            "features.0.bias",
            "features.0.weight",
            "features.2.bias",
            "features.2.weight",
            "features.5.bias",
            "features.5.weight",
            "features.7.bias",
            "features.7.weight",
        ]
    );
}

#[test]
fn cnn_matches_the_pytorch_parameter_count() {
    // PyTorch 2.11, the same layers (see cnn.rs), for 1x28x28 inputs:
    //   def cnn(chs=(32,64,128), k=2, hidden=256, cin=1, hw=28, classes=10):
    //       L=[]; c=cin
    //       for co in chs:
    //           for _ in range(k):
    //               L += [nn.Conv2d(c, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU()]; c=co
    //           L.append(nn.MaxPool2d(2)); hw//=2
    //       m = nn.Sequential(); m.features = nn.Sequential(*L)
    //       m.classifier = nn.Sequential(nn.Linear(c*hw*hw, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, classes))
    //       return m
    //   sum(p.numel() for p in cnn().parameters())        -> 584618
    //   sum(p.numel() for p in cnn(k=1).parameters())     -> 390634
    let count = |cfg: CnnConfig| {
        Model::new(&ModelConfig::Cnn(cfg), 1, 28, 10, Device::Cpu)
            .unwrap()
            .trainable_parameters()
    };
    assert_eq!(count(CnnConfig::default()), 584_618);
    assert_eq!(
        count(CnnConfig {
            convs_per_stage: 1,
            ..Default::default()
        }),
        390_634
    );
}

#[test]
fn too_many_blocks_for_the_input_is_a_config_error() {
    let cfg = ModelConfig::Student(StudentConfig {
        blocks: 6,
        ..Default::default()
    });
    let err = Model::new(&cfg, 1, 28, 10, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.blocks") && err.contains("at most 4"),
        "{err}"
    );
}

#[test]
fn save_then_load_restores_outputs_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cfg = ModelConfig::Cnn(CnnConfig {
        channels: vec![4, 8],
        convs_per_stage: 1,
        hidden: 16,
        dropout: 0.0,
    });
    tch::manual_seed(1);
    let a = Model::new(&cfg, 1, 8, 3, Device::Cpu).unwrap();
    let bytes = a.save(&path).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    tch::manual_seed(2);
    let mut b = Model::new(&cfg, 1, 8, 3, Device::Cpu).unwrap();
    let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
    let before = b.forward_t(&x, false);
    b.load(&path).unwrap();
    let (ya, yb) = (a.forward_t(&x, false), b.forward_t(&x, false));
    assert!(ya.allclose(&yb, 1e-6, 1e-6, false));
    assert!(!before.allclose(&yb, 1e-6, 1e-6, false));
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn loading_weights_of_another_shape_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w8.safetensors");
    let small = |width| {
        ModelConfig::Student(StudentConfig {
            blocks: 1,
            convs_per_block: 1,
            width,
        })
    };
    Model::new(&small(8), 1, 8, 3, Device::Cpu)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut other = Model::new(&small(4), 1, 8, 3, Device::Cpu).unwrap();
    let err = other.load(&path).unwrap_err().to_string();
    assert!(err.contains("w8.safetensors"), "{err}");
}

#[test]
fn seed_student_summary_matches_keras_rows() {
    // Keras: conv2d (None, 32, 32, 64) 1792; conv2d_1 36928; max_pooling2d (None, 16, 16, 64);
    // ...; dense (None, 10) 650; "Total params: 519,434".
    let m = seed_student();
    let s = kd_models::Summary::new("student", &m, [3, 32, 32]);
    let row = |name: &str| s.rows.iter().find(|r| r.name == name).unwrap();
    assert_eq!(
        (
            row("features.0").parameters,
            row("features.0").output_shape.clone()
        ),
        (1792, vec![64, 32, 32])
    );
    assert_eq!(row("features.2").parameters, 36_928);
    assert_eq!(row("features.6").output_shape, [64, 16, 16]);
    assert_eq!(row("avgpool").output_shape, [64]);
    assert_eq!(
        (
            row("classifier").parameters,
            row("classifier").output_shape.clone()
        ),
        (650, vec![10])
    );
    assert_eq!(s.rows.iter().map(|r| r.parameters).sum::<usize>(), 519_434);
    assert_eq!(
        (s.total(), s.trainable, s.non_trainable),
        (519_434, 519_434, 0)
    );
}

#[test]
fn channels_last_computes_the_same_logits() {
    use kd_models::memory_format::{channels_last, is_channels_last};
    tch::manual_seed(4);
    let mut m = seed_student();
    let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let nchw = m.forward_t(&x, false);
    m.use_channels_last();
    let weight = &m.var_store().variables()["features.7.weight"];
    assert!(is_channels_last(weight) && !is_channels_last(&x));
    let x_cl = channels_last(&x);
    assert!(is_channels_last(&x_cl) && x_cl.equal(&x));
    let nhwc = m.forward_t(&x_cl, false);
    let diff = (nchw - &nhwc).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * nhwc.abs().max().double_value(&[]), "{diff}");
}

#[test]
fn channels_last_models_convert_nchw_inputs_themselves() {
    tch::manual_seed(4);
    let mut m = seed_student();
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let nchw = m.forward_t(&x, false);
    m.use_channels_last();
    assert!(m.is_channels_last());
    let nhwc = m.forward_t(&x, false);
    let diff = (nchw - &nhwc).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * nhwc.abs().max().double_value(&[]), "{diff}");
}

#[test]
fn bfloat16_autocast_keeps_float32_outputs_parameters_and_gradients() {
    use kd_models::Precision;
    tch::manual_seed(5);
    let mut m = seed_student();
    let x = Tensor::rand([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let full = m.forward_t(&x, false);
    m.set_precision(Precision::Bf16).unwrap();
    assert_eq!(m.precision(), Precision::Bf16);
    let mixed = m.forward_t(&x, true);
    assert_eq!(mixed.kind(), Kind::Float);
    // bfloat16 keeps 8 significant bits: logits agree to a few per cent of their scale,
    // but are not bit-equal (which would mean autocast did nothing).
    let scale = full.abs().max().double_value(&[]);
    let diff = (&full - &mixed).abs().max().double_value(&[]);
    assert!(
        diff > 0.0 && diff <= 5e-2 * scale,
        "{diff} vs scale {scale}"
    );
    mixed.sum(Kind::Float).backward();
    let w = &m.var_store().variables()["features.0.weight"];
    assert_eq!((w.kind(), w.grad().kind()), (Kind::Float, Kind::Float));
    assert!(w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    let (logits, features) = m.forward_features(&x, false, &["features.3"]).unwrap();
    assert_eq!(
        (logits.kind(), features[0].kind()),
        (Kind::Float, Kind::Float)
    );
    assert_eq!(Precision::from_name("bf16"), Some(Precision::Bf16));
    assert_eq!(Precision::from_name("fp8"), None);
}

#[test]
fn a_channels_last_model_saves_standard_tensors_that_load_anywhere() {
    tch::manual_seed(6);
    let mut m = seed_student();
    m.use_channels_last();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cl.safetensors");
    m.save(&path).unwrap();
    let mut plain = seed_student();
    plain.load(&path).unwrap();
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (a, b) = (m.forward_t(&x, false), plain.forward_t(&x, false));
    let diff = (a - &b).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * b.abs().max().double_value(&[]), "{diff}");
}

#[test]
fn metadata_is_written_into_the_header_and_the_weights_still_load() {
    use kd_models::metadata::read_metadata;
    tch::manual_seed(7);
    let m = seed_student();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let meta = std::collections::BTreeMap::from([
        ("kd.model".to_string(), "{\"kind\":\"student\"}".to_string()),
        ("kd.classes".to_string(), "10".to_string()),
    ]);
    let bytes = m.save_with_metadata(&path, &meta).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
    assert_eq!(read_metadata(&path).unwrap(), meta);
    // The header length stays a multiple of 8, and tch reads the file as before.
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(u64::from_le_bytes(raw[..8].try_into().unwrap()) % 8, 0);
    let mut again = seed_student();
    again.load(&path).unwrap();
    let x = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(m.forward_t(&x, false).equal(&again.forward_t(&x, false)));
    // Not a safetensors file: an error naming it.
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk").unwrap();
    let err = read_metadata(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );
}

#[test]
fn forward_feature_stops_at_the_named_layer() {
    tch::manual_seed(8);
    let m = seed_student();
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (_, features) = m.forward_features(&x, false, &["features.3"]).unwrap();
    let alone = m.forward_feature(&x, false, "features.3").unwrap();
    assert!(alone.equal(&features[0]));
    assert!(m.forward_feature(&x, false, "features.99").is_none());
}

//! Every architecture kd builds, exported to ONNX: the inference graph equals the libtorch
//! model (batch norm folded, preprocessing built in), the file passes `onnx.checker` and
//! onnxruntime's logits equal kd's to 1e-4 (`scripts/onnx_run.py`), tract runs it too, and
//! the int8 QDQ file stays close to the float one.

use std::collections::HashMap;
use std::path::Path;

use kd_models::{CnnConfig, Model, ModelConfig, ResNetConfig, StudentConfig, VggConfig, WrnConfig};
use kd_onnx::runtime::{read_header, OnnxRunner};
use kd_onnx::{lower, quantize, write, Calibration, Preprocess};
use tch::{Device, Kind, Tensor};

/// Logits agree to `atol + rtol·|expected|` everywhere.
fn assert_close(what: &str, got: &Tensor, expected: &Tensor, atol: f64, rtol: f64) {
    assert_eq!(got.size(), expected.size(), "{what}: shapes");
    let excess = (got - expected).abs() - (expected.abs() * rtol + atol);
    let worst = excess.max().double_value(&[]);
    assert!(
        worst <= 0.0,
        "{what}: max |diff| {} beyond {atol} + {rtol}·|x| (max excess {worst})",
        (got - expected).abs().max().double_value(&[])
    );
}

/// A model with random weights and random batch-norm statistics (so that folding matters).
fn random_model(config: &ModelConfig, c: usize, hw: usize, classes: usize) -> Model {
    tch::manual_seed(7);
    let model = Model::new(config, c, hw, classes, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (name, mut t) in model.var_store().variables() {
            let n = t.size();
            let r = |lo: f64, hi: f64| {
                Tensor::rand(n.as_slice(), (Kind::Float, Device::Cpu)) * (hi - lo) + lo
            };
            if name.ends_with("running_mean") {
                t.copy_(&r(-0.5, 0.5));
            } else if name.ends_with("running_var") {
                t.copy_(&r(0.5, 2.0));
            } else if t.dim() == 1 && !name.ends_with("num_batches_tracked") {
                t.copy_(&r(-0.3, 0.3));
            }
        }
    });
    model
}

fn weights(model: &Model) -> HashMap<String, Tensor> {
    model.var_store().variables()
}

/// The preprocessing of `p` applied with libtorch, as kd's data loader does.
fn preprocess(p: &Preprocess, images: &Tensor) -> Tensor {
    let [_, h, w] = p.image_shape.map(|d| d as i64);
    let mut x = images.shallow_clone();
    if let Some(side) = p.pad_to.map(|s| s as i64) {
        let (top, left) = ((side - h) / 2, (side - w) / 2);
        x = x.constant_pad_nd([left, side - w - left, top, side - h - top]);
    }
    if !p.mean.is_empty() {
        let c = p.mean.len() as i64;
        let v = |v: &[f64]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .view([1, c, 1, 1])
        };
        x = (x - v(&p.mean)) / v(&p.std);
    }
    x
}

struct Case {
    name: &'static str,
    config: ModelConfig,
    preprocess: Preprocess,
    classes: usize,
}

fn cases() -> Vec<Case> {
    let plain = |c, hw| Preprocess {
        image_shape: [c, hw, hw],
        pad_to: None,
        mean: vec![],
        std: vec![],
    };
    vec![
        Case {
            name: "seed student (5x3x64, CIFAR-10 shape)",
            config: ModelConfig::Student(StudentConfig::default()),
            preprocess: plain(3, 32),
            classes: 10,
        },
        Case {
            name: "quickstart student (3x2x16, Fashion-MNIST shape)",
            config: ModelConfig::Student(StudentConfig {
                blocks: 3,
                convs_per_block: 2,
                width: 16,
            }),
            preprocess: plain(1, 28),
            classes: 10,
        },
        Case {
            name: "cnn teacher with padding and normalization",
            config: ModelConfig::Cnn(CnnConfig {
                channels: vec![8, 16],
                ..CnnConfig::default()
            }),
            preprocess: Preprocess {
                image_shape: [1, 28, 28],
                pad_to: Some(32),
                mean: vec![0.286],
                std: vec![0.353],
            },
            classes: 10,
        },
        Case {
            name: "vgg11",
            config: ModelConfig::Vgg(VggConfig {
                depth: 11,
                pretrained: None,
            }),
            preprocess: Preprocess {
                image_shape: [3, 32, 32],
                pad_to: None,
                mean: vec![0.485, 0.456, 0.406],
                std: vec![0.229, 0.224, 0.225],
            },
            classes: 10,
        },
        Case {
            name: "resnet8",
            config: ModelConfig::ResNet(ResNetConfig {
                depth: 8,
                filters: [16, 16, 32, 64],
            }),
            preprocess: plain(3, 32),
            classes: 100,
        },
        Case {
            name: "wrn_10_2",
            config: ModelConfig::Wrn(WrnConfig {
                depth: 10,
                widen_factor: 2,
                dropout: 0.0,
            }),
            preprocess: plain(3, 32),
            classes: 10,
        },
    ]
}

fn images(p: &Preprocess, n: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let [c, h, w] = p.image_shape.map(|d| d as i64);
    Tensor::rand([n, c, h, w], (Kind::Float, Device::Cpu))
}

fn hw(p: &Preprocess) -> usize {
    p.pad_to.unwrap_or(p.image_shape[1])
}

/// The case's model with random weights and its inference graph.
fn model_and_graph(case: &Case) -> (Model, kd_onnx::Graph) {
    let c = case.preprocess.image_shape[0];
    let model = random_model(&case.config, c, hw(&case.preprocess), case.classes);
    let graph = lower(
        &case.config,
        &weights(&model),
        &case.preprocess,
        case.classes,
    )
    .unwrap();
    (model, graph)
}

#[test]
fn every_architecture_lowers_to_a_graph_equal_to_the_model() {
    for case in &cases() {
        let (model, graph) = model_and_graph(case);
        let x = images(&case.preprocess, 4, 1);
        let expected = tch::no_grad(|| model.forward_t(&preprocess(&case.preprocess, &x), false));
        assert_close(case.name, &graph.run(&x), &expected, 1e-4, 1e-4);
    }
}

#[test]
fn a_model_file_of_another_architecture_is_named() {
    let case = &cases()[1];
    let model = random_model(&case.config, 1, 28, 10);
    let other = ModelConfig::Cnn(CnnConfig::default());
    let err = lower(&other, &weights(&model), &case.preprocess, 10).unwrap_err();
    assert!(err.to_string().contains("features.1.weight"), "{err}");
}

/// onnxruntime's logits for `images` from the file at `path`, when the venv has it.
fn onnxruntime_logits(path: &Path, images: &Tensor, classes: i64) -> Option<Tensor> {
    let size = images.size();
    let data = Vec::<f32>::try_from(&images.flatten(0, -1)).unwrap();
    let shape = [0, 1, 2, 3].map(|i| size[i] as usize);
    let logits = kd_testkit::onnxruntime_outputs(
        "onnxruntime",
        env!("CARGO_MANIFEST_DIR"),
        path,
        &data,
        shape,
    )?;
    Some(Tensor::from_slice(&logits).view([size[0], classes]))
}

fn tract_logits(path: &Path, images: &Tensor, classes: i64) -> Tensor {
    let n = images.size()[0];
    let runner = OnnxRunner::load(path, n as usize).unwrap();
    let data = Vec::<f32>::try_from(&images.flatten(0, -1)).unwrap();
    let logits = runner.run(&data, n as usize).unwrap();
    Tensor::from_slice(&logits).view([n, classes])
}

#[test]
fn float_files_run_in_onnxruntime_and_tract_with_kd_logits() {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases().iter().enumerate() {
        let (model, graph) = model_and_graph(case);
        let meta = vec![("kd.model".to_string(), case.name.to_string())];
        let path = dir.path().join(format!("model{i}.onnx"));
        std::fs::write(&path, write::encode(&graph, None, &meta, "test")).unwrap();

        let header = read_header(&path).unwrap();
        assert_eq!(header.metadata, meta);
        assert_eq!(header.opset, write::OPSET);
        let [c, h, w] = case.preprocess.image_shape.map(|d| d as i64);
        assert_eq!(header.input_shape, vec![c, h, w]);

        // Several batch sizes: the batch dimension is free; the seed's student on 1,000
        // images, as many as a test set's worth to compare.
        let sizes: &[i64] = if i == 0 { &[1, 5, 1000] } else { &[1, 5] };
        for &n in sizes {
            let x = images(&case.preprocess, n, 2);
            let expected =
                tch::no_grad(|| model.forward_t(&preprocess(&case.preprocess, &x), false));
            let classes = case.classes as i64;
            assert_close(
                case.name,
                &tract_logits(&path, &x, classes),
                &expected,
                1e-4,
                1e-4,
            );
            if let Some(ort) = onnxruntime_logits(&path, &x, classes) {
                assert_close(case.name, &ort, &expected, 1e-4, 1e-4);
            } else {
                return;
            }
        }
    }
}

#[test]
fn int8_files_use_int8_weights_and_stay_close_to_the_float_model() {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases().iter().enumerate() {
        let (model, graph) = model_and_graph(case);
        let calibration = Calibration::run(&graph, [images(&case.preprocess, 16, 3)]);
        assert_eq!(calibration.images, 16);
        let plan = quantize::plan(&graph, &calibration);
        assert!(
            quantize::uncovered(&graph, &plan).is_empty(),
            "{}",
            case.name
        );
        let float = write::encode(&graph, None, &[], "test");
        let int8 = write::encode(&graph, Some(&plan), &[], "test");
        let params: i64 = weights(&model).values().map(|t| t.numel() as i64).sum();
        // int8 weights are a quarter of float ones; scales, int32 biases and the QDQ nodes
        // add a fixed overhead that only matters for small models.
        eprintln!(
            "{}: {params} parameters, int8 file {:.1}% of float",
            case.name,
            100.0 * int8.len() as f64 / float.len() as f64
        );
        if params >= 100_000 {
            assert!(
                int8.len() as f64 <= 0.30 * float.len() as f64,
                "{}: int8 {} bytes, float {}",
                case.name,
                int8.len(),
                float.len()
            );
        }
        let path = dir.path().join(format!("model{i}.int8.onnx"));
        std::fs::write(&path, &int8).unwrap();
        let x = images(&case.preprocess, 8, 4);
        let expected = graph.run(&x);
        let classes = case.classes as i64;
        // Quantization noise: within a tenth of the logits' spread.
        let spread = expected.std(true).double_value(&[]);
        let tolerance = 0.1 * spread;
        assert_close(
            case.name,
            &tract_logits(&path, &x, classes),
            &expected,
            tolerance,
            0.0,
        );
        if let Some(ort) = onnxruntime_logits(&path, &x, classes) {
            assert_close(case.name, &ort, &expected, tolerance, 0.0);
        }
    }
}

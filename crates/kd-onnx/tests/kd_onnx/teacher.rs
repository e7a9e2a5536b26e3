//! Teachers from outside kd against PyTorch: a CNN exported by `torch.onnx.export` (run by
//! tract) and by `torch.jit.trace` (run by libtorch) gives PyTorch's own logits in kd to
//! 1e-4; a teacher of 32x32 RGB images normalized with ImageNet's mean and std teaches
//! 28x28 grey images through the input bridge with the logits PyTorch computes on the
//! images bridged by hand (`outside_teachers.py`), its normalization stated by
//! `[teacher.input]` or by the file's metadata; a file of kd's own export teaches with its
//! model's logits; files that cannot teach (operators tract lacks among them) are refused
//! naming what differs, and the fuzzer's corpus replays without a panic.

use std::path::{Path, PathBuf};

use kd_models::{CnnConfig, Model, ModelConfig, TeacherInput, TorchScriptTeacher};
use kd_onnx::{lower, write, OnnxTeacher, Preprocess};
use tch::{Device, Kind, Tensor};

const SCRIPT: &str = "tests/kd_onnx/outside_teachers.py";

/// The files `outside_teachers.py` writes, in a temporary folder; `None` without a venv.
fn pytorch_files(test: &str, dir: &Path) -> Option<PathBuf> {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let python = kd_testkit::require(
        test,
        kd_testkit::venv_python(manifest),
        "no venv with PyTorch and onnx (run `cargo xtask setup`)",
    )?;
    let out = std::process::Command::new(python)
        .arg(Path::new(manifest).join(SCRIPT))
        .arg(dir)
        .output()
        .expect("run Python");
    assert!(
        out.status.success(),
        "{SCRIPT}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir.to_path_buf())
}

/// A raw float32 file as a tensor of `shape`.
fn floats(path: &Path, shape: &[i64]) -> Tensor {
    let raw = std::fs::read(path).unwrap();
    let v: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_slice(&v).view(shape)
}

fn assert_close(what: &str, got: &Tensor, expected: &Tensor) {
    assert_eq!(got.size(), expected.size(), "{what}: shapes");
    let excess = (got - expected).abs() - (expected.abs() * 1e-4 + 1e-4);
    assert!(
        excess.max().double_value(&[]) <= 0.0,
        "{what}: max |diff| {}",
        (got - expected).abs().max().double_value(&[])
    );
}

fn imagenet() -> TeacherInput {
    TeacherInput {
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
        ..Default::default()
    }
}

#[test]
fn onnx_and_torchscript_exports_give_pytorchs_logits_bridged_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(d) = pytorch_files("teacher::onnx_and_torchscript", tmp.path()) else {
        return;
    };
    let images = floats(&d.join("images.f32"), &[5, 1, 28, 28]);
    let grey = floats(&d.join("grey.f32"), &[5, 10]);
    let plain = TeacherInput::default();
    let onnx = OnnxTeacher::load(&d.join("grey.onnx"), &plain, [1, 28], Some(10)).unwrap();
    assert_close("grey ONNX", &onnx.try_forward(&images).unwrap(), &grey);
    let script = TorchScriptTeacher::load(&d.join("grey.pt"), &plain, 1, Device::Cpu).unwrap();
    assert_close(
        "grey TorchScript",
        &script.try_forward(&images).unwrap(),
        &grey,
    );
    assert!(onnx.bridge().describe(28).is_none());

    // The RGB teacher: the ONNX file's input says 3x32x32, [teacher.input] the normalization;
    // TorchScript declares nothing, so [teacher.input] states it all.
    let rgb = floats(&d.join("rgb.f32"), &[5, 10]);
    let onnx = OnnxTeacher::load(&d.join("rgb.onnx"), &imagenet(), [1, 28], Some(10)).unwrap();
    assert_close("bridged ONNX", &onnx.try_forward(&images).unwrap(), &rgb);
    let full = TeacherInput {
        channels: 3,
        image_size: 32,
        ..imagenet()
    };
    let script = TorchScriptTeacher::load(&d.join("rgb.pt"), &full, 1, Device::Cpu).unwrap();
    assert_close(
        "bridged TorchScript",
        &script.try_forward(&images).unwrap(),
        &rgb,
    );
    assert_eq!(
        onnx.bridge().describe(28).unwrap(),
        "grey repeated to 3 channels, 28x28 -> 32x32 bilinear, normalized (mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225])"
    );
    // The same batch in pieces of other sizes: a plan per batch size, the same logits.
    let two = onnx.try_forward(&images.narrow(0, 3, 2)).unwrap();
    assert_close("a batch of 2", &two, &rgb.narrow(0, 3, 2));
    // The same file with the normalization in its metadata needs no [teacher.input].
    let path = d.join("rgb_contract.onnx");
    let stated = OnnxTeacher::load(&path, &TeacherInput::default(), [1, 28], Some(10)).unwrap();
    assert_close(
        "contract from metadata",
        &stated.try_forward(&images).unwrap(),
        &rgb,
    );
}

#[test]
fn files_that_cannot_teach_are_refused_naming_what_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(d) = pytorch_files("teacher::files_that_cannot_teach", tmp.path()) else {
        return;
    };
    let plain = TeacherInput::default();
    let refused = |path: &Path, input: &TeacherInput, image: [usize; 2], classes| {
        OnnxTeacher::load(path, input, image, Some(classes))
            .unwrap_err()
            .to_string()
    };
    let onnx = d.join("grey.onnx");
    let message = refused(&onnx, &plain, [1, 28], 7);
    assert!(
        message.contains("[batch, 7] logits") && message.contains("[2, 10]"),
        "{message}"
    );
    let three = TeacherInput {
        channels: 3,
        ..Default::default()
    };
    let message = refused(&onnx, &three, [1, 28], 10);
    assert!(
        message.contains("takes [batch, 1, 28, 28] images; teacher.input makes [batch, 3, 28, 28]"),
        "{message}"
    );
    let one = TeacherInput {
        channels: 1,
        ..Default::default()
    };
    let message = refused(&d.join("rgb.onnx"), &one, [1, 28], 10);
    assert!(
        message.contains("takes [batch, 3, 32, 32] images; teacher.input makes [batch, 1, 32, 32]"),
        "{message}"
    );
    let message = refused(&d.join("grey.pt"), &plain, [1, 28], 10);
    assert!(
        message.contains("grey.pt") && message.contains("not an ONNX model"),
        "{message}"
    );
    let two_to_one = TeacherInput {
        channels: 2,
        ..Default::default()
    };
    let message = refused(&onnx, &two_to_one, [1, 28], 10);
    assert!(message.contains("teacher.input.channels"), "{message}");
    for (file, operator) in [
        ("custom_op.onnx", "com.example.Shuffle"),
        ("unique_op.onnx", "Unique"),
    ] {
        let message = refused(&d.join(file), &plain, [1, 28], 10);
        let named = format!("does not implement: {operator} (export the model without them");
        assert!(
            message.contains(file) && message.contains(&named),
            "{message}"
        );
    }
}

#[test]
fn a_file_from_kds_own_export_teaches_with_the_models_logits() {
    // A kd CNN padded to 32 and normalized, its preprocessing built into the file as
    // `kd-cli export` writes it: fed kd's 28x28 images as they are (no bridge).
    let config = ModelConfig::Cnn(CnnConfig {
        channels: vec![8, 16],
        ..CnnConfig::default()
    });
    tch::manual_seed(11);
    let model = Model::new(&config, 1, 32, 10, Device::Cpu).unwrap();
    let preprocess = Preprocess {
        image_shape: [1, 28, 28],
        pad_to: Some(32),
        mean: vec![0.286],
        std: vec![0.353],
    };
    let graph = lower(&config, &model.var_store().variables(), &preprocess, 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.onnx");
    std::fs::write(&path, write::encode(&graph, None, &[], "kd")).unwrap();

    let teacher = OnnxTeacher::load(&path, &TeacherInput::default(), [1, 28], Some(10)).unwrap();
    assert!(teacher.bridge().describe(28).is_none());
    let images = Tensor::rand([6, 1, 28, 28], (Kind::Float, Device::Cpu));
    let padded = images.constant_pad_nd([2, 2, 2, 2]);
    let expected = model.forward_t(&((padded - 0.286) / 0.353), false);
    assert_close(
        "kd export",
        &teacher.try_forward(&images).unwrap(),
        &expected,
    );
}

#[test]
fn the_fuzzers_corpus_loads_or_is_refused_without_a_panic() {
    // `fuzz/corpus/onnx_teacher` (real files: two PyTorch exports and a kd export, plus what
    // the fuzzer kept) and any input that once crashed the target (`fuzz/regressions`).
    let files = kd_testkit::fuzz_inputs(env!("CARGO_MANIFEST_DIR"), "onnx_teacher");
    assert!(files.len() >= 3, "the onnx_teacher corpus is missing");
    let loaded = files
        .iter()
        .filter(|f| OnnxTeacher::load(f, &TeacherInput::default(), [1, 28], Some(10)).is_ok())
        .count();
    assert!(
        loaded >= 3,
        "the real files load: {loaded} of {}",
        files.len()
    );
}

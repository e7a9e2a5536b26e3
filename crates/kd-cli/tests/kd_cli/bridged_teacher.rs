//! A teacher trained elsewhere at 32x32 RGB with ImageNet's normalization teaches a 28x28
//! grey Fashion-MNIST student through the input bridge (`bridged_teacher.py` trains it in
//! plain PyTorch on images it bridges by hand): the run measures PyTorch's test accuracy
//! for the TorchScript file and its student learns, and the ONNX file's logits that
//! `kd-cli teach` writes for the test images are PyTorch's logits of those images bridged
//! by hand.

use std::path::Path;

use crate::common::{kd_cli, run_ok};

const SCRIPT: &str = "tests/kd_cli/bridged_teacher.py";

/// The run: `teacher` (its file's name) bridged from grey 28x28 to ImageNet-normalized RGB
/// 32x32, teaching a small student on 5,000 Fashion-MNIST images for two epochs.
fn config(data: &Path, teacher: &str) -> String {
    format!(
        r#"
name = "bridged"
seed = 7
[data]
dir = "{}"
validation_holdout = 1000
train_limit = 6000
[teacher]
source = "{teacher}"
[teacher.input]
channels = 3
image_size = 32
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
[student.model]
kind = "student"
blocks = 3
convs_per_block = 1
width = 16
[student.train]
epochs = 2
batch_size = 64
lr = 0.003
[distill]
alpha = 0.1
temperature = 4.0
"#,
        data.display()
    )
}

#[test]
fn a_teacher_trained_at_32x32_rgb_teaches_a_28x28_grey_student_through_the_bridge() {
    const TEST: &str = "a_teacher_trained_at_32x32_rgb_teaches_a_28x28_grey_student";
    let (Some(data), Some(python)) = (
        crate::common::fashion_mnist(TEST),
        crate::common::venv_python(TEST),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .args([data.as_path(), d])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pytorch_accuracy: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        pytorch_accuracy > 0.75,
        "the PyTorch teacher did not learn: {pytorch_accuracy}"
    );

    std::fs::write(d.join("run.toml"), config(&data, "rgb32.pt")).unwrap();
    let report = run_ok(d, "run.toml", "out");
    let teacher = &report["models"][0];
    let origin = teacher["pretrained"].as_str().unwrap();
    assert!(
        origin.contains(
            "fed the images grey repeated to 3 channels, 28x28 -> 32x32 bilinear, normalized"
        ),
        "{origin}"
    );
    // Float32 both: at most one of the 10,000 test images decided otherwise.
    let kd_accuracy = teacher["test_accuracy"].as_f64().unwrap();
    assert!(
        (kd_accuracy - pytorch_accuracy).abs() <= 1e-4 + 1e-9,
        "kd measured {kd_accuracy}, PyTorch {pytorch_accuracy}"
    );
    let student = report["models"][1]["test_accuracy"].as_f64().unwrap();
    let scratch = report["models"][2]["test_accuracy"].as_f64().unwrap();
    assert!(
        student > 0.6,
        "the bridged teacher's student did not learn: {student} (scratch {scratch})"
    );

    the_onnx_teachers_logits_are_pytorchs_of_the_images_bridged_by_hand(d, &data);
}

/// `kd-cli teach` with the ONNX export writes, for the 10,000 test images, the logits
/// PyTorch computed on them bridged by hand (1e-4 absolute + relative).
fn the_onnx_teachers_logits_are_pytorchs_of_the_images_bridged_by_hand(d: &Path, data: &Path) {
    std::fs::write(d.join("onnx.toml"), config(data, "rgb32.onnx")).unwrap();
    let out = kd_cli(&["teach", "onnx.toml", "--out", "t.kdl"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tensors = tch::Tensor::read_safetensors(d.join("t.kdl")).unwrap();
    let (_, kd) = tensors.iter().find(|(name, _)| name == "test").unwrap();
    let raw = std::fs::read(d.join("test_logits.f32")).unwrap();
    let floats: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let pytorch = tch::Tensor::from_slice(&floats).view([10_000, 10]);
    assert_eq!(kd.size(), pytorch.size());
    let excess = (kd - &pytorch).abs() - (pytorch.abs() * 1e-4 + 1e-4);
    let worst = (kd - &pytorch).abs().max().double_value(&[]);
    assert!(excess.max().double_value(&[]) <= 0.0, "max |diff| {worst}");
}

//! `kd-cli export --format onnx [--quantize int8]` as a user runs it: the files run in
//! onnxruntime with kd's logits, `eval` and `predict` take them, int8 keeps the accuracy of
//! the quickstart's student on real Fashion-MNIST, and bad input gets a one-line error with
//! nothing written.

use std::path::Path;

use crate::common::{kd_cli, workspace_with, TINY_CONFIG};
use tch::{Device, Tensor};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The first `n` test images of an IDX dataset in `dir`, as float `[n, 1, h, w]` in [0, 1].
fn test_images(dir: &Path, n: usize) -> Tensor {
    let test = ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap();
    let labels = test.to_string_lossy().replace("images-idx3", "labels-idx1");
    let data = kd_data::ImageDataset::from_idx(&test, Path::new(&labels), 10).unwrap();
    let images = data.images();
    let [_, c, h, w] = [0, 1, 2, 3].map(|i| images.shape()[i] as i64);
    let pixels: Vec<f32> = images
        .iter()
        .take(n * (c * h * w) as usize)
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    Tensor::from_slice(&pixels).view([n as i64, c, h, w])
}

/// kd's own logits for `images` from a saved model (its transform applied by kd).
fn kd_logits(model: &Path, images: &Tensor) -> Tensor {
    let meta = kd_models::metadata::read_metadata(model).unwrap();
    let config: kd_models::ModelConfig = serde_json::from_str(&meta["kd.model"]).unwrap();
    let transform: kd_data::TransformConfig = serde_json::from_str(&meta["kd.transform"]).unwrap();
    let classes: usize = meta["kd.classes"].parse().unwrap();
    let x = transform.apply_unit(images);
    let mut net =
        kd_models::Model::new(&config, 1, x.size()[2] as usize, classes, Device::Cpu).unwrap();
    net.load(model).unwrap();
    tch::no_grad(|| net.forward_t(&x, false))
}

/// onnxruntime's logits for `images` from `model`, when the venv has it.
fn onnxruntime_logits(test: &str, model: &Path, images: &Tensor) -> Option<Tensor> {
    let size = images.size();
    let data = Vec::<f32>::try_from(&images.flatten(0, -1)).unwrap();
    let shape = [0, 1, 2, 3].map(|i| size[i] as usize);
    let logits =
        kd_testkit::onnxruntime_outputs(test, env!("CARGO_MANIFEST_DIR"), model, &data, shape)?;
    Some(Tensor::from_slice(&logits).view([size[0], -1]))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// `kd-cli export out/distilled.safetensors --format onnx --data DATA --out OUT EXTRA...` in
/// `d`; its output.
fn export_distilled(d: &Path, data: &str, out: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "export",
        "out/distilled.safetensors",
        "--format",
        "onnx",
        "--data",
        data,
        "--out",
        out,
    ];
    args.extend(extra);
    succeeds(kd_cli(&args, d))
}

/// The accuracy `kd-cli eval` prints for `model`.
fn eval_accuracy(dir: &Path, model: &str, data: &str) -> f64 {
    let text = succeeds(kd_cli(&["eval", model, "--data", data, "--json"], dir));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    report["accuracy"].as_f64().unwrap()
}

#[test]
fn exported_onnx_files_run_in_onnxruntime_eval_and_predict_with_kd_results() {
    const TEST: &str = "exported_onnx_files_run_in_onnxruntime_eval_and_predict_with_kd_results";
    let (dir, _) = workspace_with(TINY_CONFIG);
    let d = dir.path();
    // Padding and normalization, so the built-in preprocessing is exercised.
    // Float32, so that the saved model and the exported file compute alike.
    let sets = [
        "data.transform.pad_to=16",
        "data.transform.mean=[0.25]",
        "data.transform.std=[0.5]",
        "precision=\"f32\"",
    ];
    let mut args = vec!["run", "run.toml", "--out", "out"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    succeeds(kd_cli(&args, d));
    let export = |extra: &[&str], out: &str| export_distilled(d, "data", out, extra);
    let text = export(&[], "student.onnx");
    assert!(text.contains("wrote student.onnx (ONNX opset 17"), "{text}");
    let text8 = export(
        &["--quantize", "int8", "--calibration-images", "50"],
        "student.int8.onnx",
    );
    assert!(
        text8.contains("int8 QDQ calibrated on 50 training images"),
        "{text8}"
    );
    assert!(text8.contains("int8 / float: file"), "{text8}");

    // onnxruntime and kd agree on the float file; the int8 one is close.
    let images = test_images(&d.join("data"), 80);
    let expected = kd_logits(&d.join("out/distilled.safetensors"), &images);
    let Some(float) = onnxruntime_logits(TEST, &d.join("student.onnx"), &images) else {
        return;
    };
    assert!(
        float.allclose(&expected, 1e-4, 1e-4, false),
        "max |diff| {}",
        max_diff(&float, &expected)
    );
    let int8 = onnxruntime_logits(TEST, &d.join("student.int8.onnx"), &images).unwrap();
    let spread = expected.std(true).double_value(&[]);
    assert!(
        max_diff(&int8, &expected) < 0.1 * spread,
        "int8 max |diff| {} (logit std {spread})",
        max_diff(&int8, &expected)
    );

    // eval: the ONNX file's accuracy is the saved model's. Exact on these 80 images: both
    // float32 (the run's precision is pinned above and eval's default is float32), logits
    // equal to 1e-4 (checked above), and no test image here has two logits that close.
    let kd = eval_accuracy(d, "out/distilled.safetensors", "data");
    assert_eq!(eval_accuracy(d, "student.onnx", "data"), kd);
    let onnx_in_bf16 = kd_cli(&["eval", "student.onnx", "--precision", "bf16"], d);
    assert!(
        !onnx_in_bf16.status.success()
            && stderr(&onnx_in_bf16).contains("student.onnx: an ONNX file computes in float32"),
        "{}",
        stderr(&onnx_in_bf16)
    );
    predicts_as_the_saved_model(d);
    latency_table_has_a_row_per_file_and_runtime(d);
    int8_calibrates_on_every_training_image_when_there_are_fewer_than_the_default(d);
}

/// int8 without `--calibration-images` calibrates on 1,000 training images, or on all of them
/// where there are fewer (240 in this workspace).
fn int8_calibrates_on_every_training_image_when_there_are_fewer_than_the_default(d: &Path) {
    let text = export_distilled(d, "data", "all.int8.onnx", &["--quantize", "int8"]);
    assert!(
        text.contains("int8 QDQ calibrated on 240 training images"),
        "{text}"
    );
}

/// predict: the same classes and probabilities from the ONNX file as from the saved model
/// (both float32).
fn predicts_as_the_saved_model(d: &Path) {
    let png = d.join("quadrant.png");
    let mut pixels = image::GrayImage::new(12, 12);
    for (x, y, p) in pixels.enumerate_pixels_mut() {
        *p = image::Luma([if x >= 6 && y < 6 { 220 } else { 10 }]);
    }
    pixels.save(&png).unwrap();
    let predict = |model: &str| -> serde_json::Value {
        let text = succeeds(kd_cli(&["predict", model, "quadrant.png", "--json"], d));
        serde_json::from_str(&text).unwrap()
    };
    let (torch, onnx) = (
        predict("out/distilled.safetensors"),
        predict("student.onnx"),
    );
    let top = |v: &serde_json::Value| v[0]["top"].clone();
    let (t, o) = (top(&torch), top(&onnx));
    assert_eq!(t[0][0], o[0][0], "{torch} vs {onnx}");
    for k in 0..3 {
        let (a, b) = (t[k][1].as_f64().unwrap(), o[k][1].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "{torch} vs {onnx}");
    }
}

/// bench --mode latency: each file in each runtime, one row each, in one run; no files is a
/// one-line error.
fn latency_table_has_a_row_per_file_and_runtime(d: &Path) {
    let table = succeeds(kd_cli(
        &[
            "bench",
            "--mode",
            "latency",
            "out/teacher.safetensors",
            "out/distilled.safetensors",
            "student.int8.onnx",
        ],
        d,
    ));
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, (file, runtime)) in rows.iter().zip([
        ("out/teacher.safetensors", "libtorch f32"),
        ("out/distilled.safetensors", "libtorch f32"),
        ("student.int8.onnx", "tract"),
        ("student.int8.onnx", "onnxruntime"),
    ]) {
        assert!(row.starts_with(file) && row.contains(runtime), "{table}");
        let numbers: Vec<f64> = row
            .split_whitespace()
            .filter_map(|w| w.parse::<f64>().ok())
            .collect();
        assert!(
            numbers.len() >= 4 && numbers.iter().all(|&v| v > 0.0),
            "{row}"
        );
    }
    let none = kd_cli(&["bench", "--mode", "latency"], d);
    assert!(
        !none.status.success() && stderr(&none).contains("name the model files"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn the_quickstart_student_keeps_its_accuracy_in_int8_on_fashion_mnist() {
    const TEST: &str = "the_quickstart_student_keeps_its_accuracy_in_int8_on_fashion_mnist";
    let Some(data) = crate::common::fashion_mnist(TEST) else {
        return;
    };
    // The quickstart's student architecture, trained briefly (a cnn teacher of one epoch).
    let config = format!(
        r#"
name = "onnx"
seed = 5
[data]
dir = "{}"
validation_holdout = 1000
train_limit = 21000
[teacher.model]
kind = "student"
blocks = 3
convs_per_block = 1
width = 16
[teacher.train]
epochs = 1
batch_size = 128
lr = 2e-3
[student.model]
kind = "student"
blocks = 3
convs_per_block = 2
width = 16
[student.train]
epochs = 2
batch_size = 128
lr = 2e-3
"#,
        data.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("run.toml"), config).unwrap();
    succeeds(kd_cli(&["run", "run.toml", "--out", "out"], d));
    let data_arg = data.display().to_string();
    let text = export_distilled(d, &data_arg, "s.int8.onnx", &["--quantize", "int8"]);
    export_distilled(d, &data_arg, "s.onnx", &[]);
    // int8 within 0.5 points of float on the 10,000 test images.
    let float_acc = eval_accuracy(d, "s.onnx", &data_arg);
    let int8_acc = eval_accuracy(d, "s.int8.onnx", &data_arg);
    reports_what_the_float_file_scores(d, &data_arg, float_acc);
    assert!(float_acc > 0.7, "the student did not learn: {float_acc}");
    assert!(
        (int8_acc - float_acc).abs() <= 0.005,
        "int8 {int8_acc} vs float {float_acc}\n{text}"
    );
    // The int8 tensors are at most 30 % of the float ones (the file: see the table).
    assert!(int8_tensor_percent(&text) <= 30.0, "{text}");
    // onnxruntime equals kd to 1e-4 on 1,000 real test images.
    let images = test_images(&data, 1000);
    let expected = kd_logits(&d.join("out/distilled.safetensors"), &images);
    if let Some(ort) = onnxruntime_logits(TEST, &d.join("s.onnx"), &images) {
        assert!(
            ort.allclose(&expected, 1e-4, 1e-4, false),
            "max |diff| {}",
            max_diff(&ort, &expected)
        );
    }
}

/// The int8 tensors' size in percent of the float ones, from `kd-cli export`'s table
/// (`int8 / float: file 34.2%, tensors 27.7%, ...`).
fn int8_tensor_percent(export_output: &str) -> f64 {
    let line = export_output
        .lines()
        .find(|l| l.starts_with("int8 / float"))
        .unwrap();
    let tensors = line.split("tensors ").nth(1).unwrap();
    tensors.split('%').next().unwrap().parse().unwrap()
}

/// The run's precision is `auto` here (bf16 on CPUs with native bfloat16, f32 elsewhere):
/// the report's test accuracy is float32 whatever it resolved to, `kd-cli eval` prints it
/// again from the file, and the float ONNX file (tract, float32) scores it to within a few
/// images — both compute in float32, but in different kernels that round differently in the
/// last bits, so a test image whose two best logits are within ~1e-5 may flip. No equality
/// between two precisions is asserted; the run-precision accuracy is compared with the same
/// precision's evaluation only.
fn reports_what_the_float_file_scores(d: &Path, data: &str, onnx_acc: f64) {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/report.json")).unwrap()).unwrap();
    let distilled = &report["models"][1];
    let reported = distilled["test_accuracy"].as_f64().unwrap();
    let eval_f32 = eval_accuracy(d, "out/distilled.safetensors", data);
    assert_eq!(eval_f32, reported, "kd-cli eval (f32) vs report.json");
    const FEW_IMAGES: f64 = 5.0 / 10_000.0;
    assert!(
        (onnx_acc - reported).abs() <= FEW_IMAGES,
        "float ONNX {onnx_acc} vs the report's float32 {reported}"
    );
    match report["precision"].as_str().unwrap() {
        "f32" => assert!(distilled["test_in_run_precision"].is_null(), "{distilled}"),
        mixed => {
            let in_run = &distilled["test_in_run_precision"];
            assert_eq!(in_run["precision"], mixed, "{distilled}");
            let text = succeeds(kd_cli(
                &[
                    "eval",
                    "out/distilled.safetensors",
                    "--data",
                    data,
                    "--precision",
                    "run",
                    "--json",
                ],
                d,
            ));
            let eval: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(eval["accuracy"], in_run["accuracy"], "--precision run");
        }
    }
}

/// Export requests that must fail: (arguments after `export`, the file they must not leave,
/// what the one-line error says).
fn bad_export_requests() -> [(&'static [&'static str], &'static str, &'static str); 5] {
    [
        (
            &["notes.safetensors", "--format", "onnx", "--out", "a.onnx"],
            "a.onnx",
            "not a kd model file",
        ),
        (
            &[
                "out/distilled.safetensors",
                "--format",
                "onnx",
                "--out",
                "no/such/a.onnx",
            ],
            "no/such/a.onnx",
            "does not exist",
        ),
        (
            &[
                "out/distilled.safetensors",
                "--format",
                "onnx",
                "--quantize",
                "int8",
                "--calibration-images",
                "0",
                "--data",
                "data",
                "--out",
                "a.onnx",
            ],
            "a.onnx",
            "--calibration-images: expected at least 1",
        ),
        (
            &[
                "out/distilled.safetensors",
                "--format",
                "onnx",
                "--quantize",
                "int8",
                "--calibration-images",
                "100000",
                "--data",
                "data",
                "--out",
                "a.onnx",
            ],
            "a.onnx",
            "--calibration-images: expected at most",
        ),
        (
            &[
                "out/distilled.safetensors",
                "--quantize",
                "int8",
                "--out",
                "a.pt",
            ],
            "a.pt",
            "--quantize: only with --format onnx",
        ),
    ]
}

#[test]
fn bad_export_requests_are_one_line_errors_that_write_nothing() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let d = dir.path();
    succeeds(kd_cli(&["run", "run.toml", "--out", "out"], d));
    std::fs::write(d.join("notes.safetensors"), "not a model").unwrap();
    let cases = bad_export_requests();
    for (args, out, message) in cases {
        let mut all = vec!["export"];
        all.extend(args);
        let run = kd_cli(&all, d);
        let err = stderr(&run);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!d.join(out).exists(), "{args:?} left {out}");
    }
    // Neither eval nor predict takes an ONNX file kd did not write.
    std::fs::write(d.join("junk.onnx"), [0xff, 0x00, 0x13]).unwrap();
    let run = kd_cli(&["eval", "junk.onnx"], d);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("junk.onnx: not an ONNX model"),
        "{}",
        stderr(&run)
    );
}

//! `distill.loss = "simkd"` through `kd-cli run` (Chen et al., CVPR 2022): the distilled
//! student is the student's layers up to `student_layer`, a projector and the trained
//! teacher's head, saved whole, so that `kd-cli eval` rebuilds it from its file alone; ONNX
//! export says it cannot lower it; layers that cannot be joined are one-line errors.

use crate::cli::run_fails;
use crate::common::{kd_cli, run_ok, workspace_with, TINY_CONFIG};

/// The tiny run with SimKD from the student's second conv (4 x 6 x 6 on the 12x12 inputs)
/// to the teacher's second stage (16 x 6 x 6).
fn simkd_config(student_layer: &str) -> String {
    TINY_CONFIG.replace(
        "[distill]\nalpha = 0.5\ntemperature = 2.0",
        &format!("[distill]\nloss = \"simkd\"\nstudent_layer = \"{student_layer}\"\nteacher_layer = \"features.6\""),
    )
}

#[test]
fn a_simkd_student_keeps_the_teachers_head_and_is_evaluated_from_its_file() {
    let (dir, _) = workspace_with(&simkd_config("features.4"));
    let report = run_ok(dir.path(), "run.toml", "out");
    let (distilled, scratch) = (&report["models"][1], &report["models"][2]);
    assert_eq!(distilled["objective"]["loss"], "simkd");
    assert_eq!(distilled["objective"]["teacher_logits"], "live");
    // Student convs 40 + 148; projector 4*8 + 8*8*9 + 8*16 with BN 2*(8+8+16); the
    // teacher's dense layers (16*3*3)*16+16 and 16*10+10. The scratch student adds its own
    // dense 4*10+10 to the convs instead.
    assert_eq!(distilled["parameters"], 188 + 800 + 2_490, "{distilled}");
    assert_eq!(scratch["parameters"], 188 + 50);

    let out = |name: &str| dir.path().join("out").join(name);
    let student = kd_models::tensor_file::read_tensors(&out("distilled.safetensors")).unwrap();
    let teacher = kd_models::tensor_file::read_tensors(&out("teacher.safetensors")).unwrap();
    for name in ["classifier.0.weight", "classifier.3.bias"] {
        let head = &student[&format!("teacher.{name}")];
        assert!(head.equal(&teacher[name]), "{name}: the teacher's, frozen");
    }

    let args = [
        "eval",
        "out/distilled.safetensors",
        "--data",
        "data",
        "--json",
    ];
    let eval = kd_cli(&[&args[..], &["--device", "cpu"]].concat(), dir.path());
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let expected = distilled["test_accuracy"].as_f64().unwrap();
    assert!((eval["accuracy"].as_f64().unwrap() - expected).abs() < 1e-9);

    let onnx = [
        "export",
        "out/distilled.safetensors",
        "--format",
        "onnx",
        "--out",
        "d.onnx",
    ];
    let export = kd_cli(&onnx, dir.path());
    let stderr = String::from_utf8_lossy(&export.stderr);
    assert_eq!(export.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not lower SimKD"), "{stderr}");
    assert!(!dir.path().join("d.onnx").exists());
}

#[test]
fn simkd_layers_that_cannot_be_joined_are_one_line_errors() {
    // features.5 is 3x3, smaller than the teacher's 6x6 map.
    let stderr = run_fails(&simkd_config("features.5"));
    assert!(
        stderr.contains("distill.student_layer") && stderr.contains("6x6"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // What kd records for a SimKD student is not an architecture to configure.
    let recorded = "[student.model]\nkind = \"simkd\"\nstudent_layer = \"features.1\"\nteacher_layer = \"features.2\"\nfactor = 2\nstudent = { kind = \"student\", blocks = 1, convs_per_block = 1, width = 4 }\nteacher = { kind = \"student\", blocks = 1, convs_per_block = 1, width = 4 }\n";
    let start = TINY_CONFIG.find("[student.model]").unwrap();
    let end = TINY_CONFIG.find("[student.train]").unwrap();
    let written = format!("{}{recorded}{}", &TINY_CONFIG[..start], &TINY_CONFIG[end..]);
    let stderr = run_fails(&written);
    assert!(
        stderr.contains("student.model.kind") && stderr.contains("distill.loss = \"simkd\""),
        "{stderr}"
    );
}

//! A run on an image folder, as a user with their own images starts it: PNG files in one
//! folder per class (names that are not kd's), `dataset = "image-folder"`, and every tool
//! after the run (`eval`, `predict`) speaking of the folder's classes.

mod common;

use std::path::Path;

use common::{kd_cli, read_json, run_ok, TINY_CONFIG};

/// The 4-class quadrant task of `common::write_dataset` as 12x12 gray PNGs, written under
/// `dir/<split>/<class>/`, `n` images per split; the classes are named so that sorting
/// them is not their quadrant order.
fn write_folder(dir: &Path, split: &str, n: usize, salt: usize) {
    let names = ["top-left", "top-right", "bottom-left", "bottom-right"];
    for i in 0..n {
        let k = (i * 7 + salt) % 4;
        let image = image::ImageBuffer::from_fn(12, 12, |x, y| {
            let (x, y) = (x as usize, y as usize);
            let quadrant = (y / 6) * 2 + x / 6;
            let noise = ((i * 31 + y * 17 + x * 13 + salt) % 80) as u8;
            image::Luma([if quadrant == k { 160 + noise } else { noise }])
        });
        let folder = dir.join(split).join(names[k]);
        std::fs::create_dir_all(&folder).unwrap();
        image.save(folder.join(format!("{i:04}.png"))).unwrap();
    }
}

#[test]
fn a_run_on_an_image_folder_learns_and_names_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write_folder(&images, "train", 240, 0);
    write_folder(&images, "val", 40, 2);
    write_folder(&images, "test", 80, 1);
    let config = TINY_CONFIG.replace(
        "[data]\ndir = \"data\"\nvalidation_holdout = 40",
        "[data]\ndataset = \"image-folder\"\ndir = \"images\"\n[data.image_folder]\nimage_size = 12\nchannels = 1",
    );
    assert!(config.contains("image-folder"));
    std::fs::write(dir.path().join("run.toml"), &config).unwrap();
    let report = run_ok(dir.path(), "run.toml", "out");
    assert_eq!(
        report["validation_images"], 40,
        "val/ is the validation set"
    );
    assert_eq!(report["test_images"], 80);
    let teacher = report["models"][0]["test_accuracy"].as_f64().unwrap();
    assert!(teacher > 0.9, "teacher accuracy {teacher}");
    assert!(images.join(".kd-cache/train.kdimg").exists());

    // eval re-reads the folder (from its cache) and names the folder's classes.
    let out = kd_cli(
        &[
            "eval",
            "out/distilled.safetensors",
            "--data",
            "images",
            "--json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let classes: Vec<&str> = eval["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        ["bottom-left", "bottom-right", "top-left", "top-right"]
    );
    let distilled = read_json(&dir.path().join("out/report.json"))["models"][1]["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!((eval["accuracy"].as_f64().unwrap() - distilled).abs() < 1e-9);

    // predict names a top-right image's class by its folder.
    let sample = images
        .join("test/top-right")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = kd_cli(
        &[
            "predict",
            "out/teacher.safetensors",
            sample.to_str().unwrap(),
        ],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("top-right"), "{text}");
}

#[test]
fn an_image_folder_without_test_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 40, 0);
    let config = TINY_CONFIG.replace(
        "[data]\ndir = \"data\"\nvalidation_holdout = 40",
        "[data]\ndataset = \"image-folder\"\ndir = \"images\"\nvalidation_holdout = 8\n[data.image_folder]\nimage_size = 12\nchannels = 1",
    );
    std::fs::write(dir.path().join("run.toml"), &config).unwrap();
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("images") && stderr.contains("expected a test/ folder"),
        "{stderr}"
    );
    assert!(!dir.path().join("out/checkpoints").exists());
}

//! `kd-cli teach` and `teacher.logits`: a run taught by the logits file its own teacher
//! wrote trains byte-identical students to the run that computed the logits itself (one
//! machine, same threads) — a tune likewise ranks as the tune that trains the teacher —
//! and a file that belongs to other images, is not a logits file
//! or is cut short is refused before training, naming the file and what differs.

use std::path::Path;

use crate::common::{kd_cli, run_ok, workspace_with, TINY_CONFIG};

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

/// `kd-cli` with `args` in `dir`: its stderr, after checking that it failed with status 1
/// and trained nothing into `bad/`.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = kd_cli(args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!dir.join("bad/checkpoints").exists(), "{args:?} trained");
    stderr
}

#[test]
fn a_run_taught_by_a_logits_file_trains_the_students_the_teacher_would() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let d = dir.path();
    let full = run_ok(d, "run.toml", "full");
    // The teacher that run trained, resumed from its run directory, writes its logits.
    let args = ["teach", "run.toml", "--run-dir", "full", "--out", "t.kdl"];
    let out = kd_cli(&args, d);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("wrote t.kdl")
            && stdout.contains("200 training, 40 validation and 80 test images"),
        "{stdout}"
    );

    let args = [
        "run",
        "run.toml",
        "--set",
        "teacher.logits=t.kdl",
        "--out",
        "taught",
    ];
    let out = kd_cli(&args, d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for student in ["distilled.safetensors", "scratch.safetensors"] {
        let (a, b) = (
            bytes(&d.join("full"), student),
            bytes(&d.join("taught"), student),
        );
        assert!(
            a == b,
            "{student} differs from the run that computed its logits"
        );
    }
    assert!(
        !d.join("taught/teacher.safetensors").exists(),
        "no teacher ran"
    );
    let report = crate::common::read_json(&d.join("taught/report.json"));
    let teacher = &report["models"][0];
    assert_eq!(teacher["architecture"], "logits file");
    let gap = (teacher["test_accuracy"].as_f64().unwrap()
        - full["models"][0]["test_accuracy"].as_f64().unwrap())
    .abs();
    assert!(
        gap <= 1.0 / 80.0,
        "the file's test logits score {gap} apart"
    );
    for i in 1..3 {
        assert_eq!(
            report["models"][i]["test_accuracy"],
            full["models"][i]["test_accuracy"]
        );
    }
    the_teachers_card_is_in_the_report_and_printed(d, &full);
    a_kd_model_file_teaches_as_the_architecture_it_records(d, &full);
    files_of_other_images_or_kinds_are_refused(d);
    a_tune_taught_by_the_file_ranks_as_one_that_trains_the_teacher(d);
}

/// `teacher.source` naming the run's `teacher.safetensors`, without `[teacher.model]`, builds
/// the architecture the file records and scores as the run's teacher; a `[teacher.model]` or
/// a `data.transform` other than the file's is refused before training.
fn a_kd_model_file_teaches_as_the_architecture_it_records(d: &Path, full: &serde_json::Value) {
    let model = "[teacher.model]\nkind = \"cnn\"\nchannels = [8, 16]\nconvs_per_stage = 1\nhidden = 16\ndropout = 0.0\n";
    assert!(TINY_CONFIG.contains(model));
    let source = "[teacher]\nsource = \"full/teacher.safetensors\"\n";
    std::fs::write(d.join("file.toml"), TINY_CONFIG.replace(model, source)).unwrap();
    let report = run_ok(d, "file.toml", "from-file");
    let teacher = &report["models"][0];
    assert_eq!(teacher["test_accuracy"], full["models"][0]["test_accuracy"]);
    assert_eq!(teacher["epochs_run"], 0, "a loaded teacher is not trained");

    let other = model.replace("hidden = 16", "hidden = 32");
    let both = TINY_CONFIG.replace(model, &format!("{source}{other}"));
    std::fs::write(d.join("bad.toml"), both).unwrap();
    let stderr = refused(d, &["run", "bad.toml", "--out", "bad"]);
    assert!(
        stderr.contains("teacher.checkpoint: full/teacher.safetensors holds a")
            && stderr.contains("leave [teacher.model] out"),
        "{stderr}"
    );
    let args = [
        "run",
        "file.toml",
        "--out",
        "bad",
        "--set",
        "data.transform.mean=[0.5]",
        "--set",
        "data.transform.std=[0.5]",
    ];
    let stderr = refused(d, &args);
    assert!(
        stderr.contains("set data.transform to the file's"),
        "{stderr}"
    );
}

/// A tune of seed 3 with `teacher.logits` gives the leaderboard of the same tune training
/// the teacher itself (the same teacher: seed 3, same data, same threads).
fn a_tune_taught_by_the_file_ranks_as_one_that_trains_the_teacher(d: &Path) {
    let section = "[tune]\nseeds = [3]\nrungs = [1, 2]\neta = 2\nfuse = false\n\
                   [tune.space]\n\"distill.temperature\" = [1.0, 4.0]\n";
    std::fs::write(d.join("tune.toml"), format!("{TINY_CONFIG}{section}")).unwrap();
    let taught = TINY_CONFIG.replace(
        "[teacher.model]",
        "[teacher]\nlogits = \"t.kdl\"\n[teacher.model]",
    );
    std::fs::write(d.join("taught.toml"), format!("{taught}{section}")).unwrap();
    for (config, out) in [("tune.toml", "trains"), ("taught.toml", "reads")] {
        let output = kd_cli(&["tune", config, "--out", out], d);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rows = |out: &str| crate::common::read_json(&d.join(out).join("tune.json"))["rows"].clone();
    assert_eq!(rows("trains"), rows("reads"));
    assert_eq!(
        rows("reads").as_array().map(Vec::len),
        Some(2),
        "two configurations"
    );
    assert!(d.join("trains/seed-3/teacher.safetensors").exists());
    assert!(!d.join("reads/seed-3/teacher.safetensors").exists());
}

/// The report's teacher card (its accuracy the report's, its calibration error in [0, 1],
/// at the loss's temperature 2, the teacher file's digest) is what `teach --card` prints.
fn the_teachers_card_is_in_the_report_and_printed(d: &Path, full: &serde_json::Value) {
    let card = &full["models"][0]["card"];
    assert_eq!(card["test_accuracy"], full["models"][0]["test_accuracy"]);
    assert_eq!(card["temperature"], 2.0);
    for ece in [&card["ece"], &card["ece_at_temperature"]] {
        assert!((0.0..=1.0).contains(&ece.as_f64().unwrap()), "{card}");
    }
    assert!(card["member_agreement"].is_null());
    assert_eq!(card["files"][0]["file"], "full/teacher.safetensors");
    let out = kd_cli(&["teach", "run.toml", "--run-dir", "full", "--card"], d);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = card["files"][0]["sha256"].as_str().unwrap();
    assert!(
        stdout.contains("teacher card") && stdout.contains("ECE at T = 2") && stdout.contains(sha),
        "{stdout}"
    );
}

/// Each bad file or config fails `run` (and `check`) before training.
fn files_of_other_images_or_kinds_are_refused(d: &Path) {
    let other = ["--set", "data.validation_holdout=30"];
    let run = |extra: &[&str], file: &str| {
        let set = format!("teacher.logits={file}");
        let args = [
            &["run", "run.toml", "--out", "bad", "--set", &set][..],
            extra,
        ]
        .concat();
        refused(d, &args)
    };
    let message = run(&other, "t.kdl");
    assert!(
        message.contains(
            "t.kdl: made for other images: its kd.train.images is \"200\", this run's \"210\""
        ),
        "{message}"
    );
    let message = run(&[], "full/distilled.safetensors");
    assert!(
        message.contains("expected a teacher logits file"),
        "{message}"
    );
    let whole = bytes(d, "t.kdl");
    std::fs::write(d.join("cut.kdl"), &whole[..whole.len() - 100]).unwrap();
    let message = run(&[], "cut.kdl");
    assert!(message.contains("cut.kdl"), "{message}");
    let augmented = ["--set", "student.train.augment.hflip=true"];
    let message = run(&augmented, "t.kdl");
    assert!(
        message.contains("teacher.logits: the distilled student needs the teacher live"),
        "{message}"
    );
    let message = run(&[], "missing.kdl");
    assert!(
        message.contains("teacher.logits: expected a teacher logits file"),
        "{message}"
    );
    let message = refused(
        d,
        &[
            "check",
            "run.toml",
            "--set",
            "teacher.logits=t.kdl",
            "--set",
            "data.validation_holdout=30",
        ],
    );
    assert!(message.contains("made for other images"), "{message}");
}

//! A newcomer's first hour, command by command: the printed default config checks and runs,
//! `check` shows what a run would do and warns about surprising resolutions, logs off a
//! terminal carry no colour codes and land in the run's `train.log`, wrong files get errors
//! that say what they are and what to do, `predict` survives one bad image, and files are
//! written with the umask's permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{kd_cli, run_ok, workspace_with, TINY_CONFIG};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A workspace whose `data/fashion-mnist` is the real Fashion-MNIST (a symbolic link).
fn with_real_data(test: &str) -> Option<tempfile::TempDir> {
    let data = crate::common::fashion_mnist(test)?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::os::unix::fs::symlink(data, dir.path().join("data/fashion-mnist")).unwrap();
    Some(dir)
}

#[test]
fn the_printed_default_config_checks_and_runs_as_printed() {
    let Some(dir) = with_real_data("the_printed_default_config_checks_and_runs_as_printed") else {
        return;
    };
    let printed = kd_cli(&["config", "default"], dir.path());
    assert!(printed.status.success());
    std::fs::write(dir.path().join("my.toml"), &printed.stdout).unwrap();

    let check = kd_cli(&["check", "my.toml"], dir.path());
    let text = stdout(&check);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        text.contains("data: fashion-mnist in data/fashion-mnist: 55000 training, 5000 validation"),
        "{text}"
    );
    assert!(text.contains("model input: 1x32x32"), "{text}");
    assert_eq!(text.matches("Total params:").count(), 2, "{text}");
    assert!(text.contains("warnings: none"), "{text}");
    assert!(text.contains("ok: `kd-cli run my.toml`"), "{text}");

    // The same file, run: only the amount of work is cut (data, epochs), every other key is
    // as printed (the seed's 15-conv student on 32x32 inputs, batch 512, its callbacks).
    let out = kd_cli(
        &[
            "run",
            "my.toml",
            "--out",
            "out",
            "--set",
            "data.train_limit=700",
            "--set",
            "data.test_limit=100",
            "--set",
            "data.validation_holdout=100",
            "--set",
            "teacher.train.epochs=1",
            "--set",
            "student.train.epochs=1",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = crate::common::read_json(&dir.path().join("out/report.json"));
    assert_eq!(report["models"][1]["parameters"], 518_282, "{report}");
}

#[test]
fn check_warns_where_an_override_or_a_dataset_surprises() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    std::fs::write(
        dir.path().join("run.toml"),
        TINY_CONFIG
            .replace("dir = \"data\"", "dir = \"data/fashion-mnist\"")
            .replace(
                "temperature = 2.0",
                "temperature = 2.0\ntemperature_squared = true",
            ),
    )
    .unwrap();
    std::fs::rename(dir.path().join("data"), dir.path().join("fm")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::rename(dir.path().join("fm"), dir.path().join("data/fashion-mnist")).unwrap();

    let out = kd_cli(
        &[
            "check",
            "run.toml",
            "--set",
            "data.dataset=mnist",
            "--set",
            "distill.loss=dkd",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warning: data.dir = \"data/fashion-mnist\" is the default directory of fashion-mnist, but data.dataset = \"mnist\""),
        "{text}"
    );
    for dropped in ["distill.alpha = 0.5", "distill.temperature_squared = true"] {
        assert!(
            text.lines().any(|l| l
                .starts_with(&format!("warning: {dropped} in run.toml has no effect"))
                && l.contains("--set distill.loss=\"dkd\"")),
            "{dropped}: {text}"
        );
    }
    // The resolved config shows what the run would use.
    assert!(text.contains("loss = \"dkd\""), "{text}");

    // `run` prints the same warnings before it starts.
    let out = kd_cli(
        &["run", "run.toml", "--set", "distill.loss=dkd", "--out", "o"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("distill.temperature_squared = true in run.toml has no effect"));

    // A config `run` would refuse is refused by `check`, in one line, with nothing written.
    let out = kd_cli(
        &["check", "run.toml", "--set", "student.model.blocks=9"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("student.model.blocks"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn summary_takes_overrides() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let total = |args: &[&str]| {
        let out = kd_cli(args, dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("Total params:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let plain = total(&["summary", "run.toml"]);
    let wider = total(&["summary", "run.toml", "--set", "student.model.width=8"]);
    assert_eq!(plain[0], wider[0], "the teacher is unchanged");
    assert_ne!(plain[1], wider[1], "the student is wider");
}

#[test]
fn logs_off_a_terminal_have_no_colour_codes_and_go_to_train_log_too() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kd-cli"))
        .args([
            "run",
            "run.toml",
            "--out",
            "out",
            "--device",
            "cpu",
            // No improvement is ever enough: the rate drops after the second epoch.
            "--set",
            "student.train.reduce_lr.min_delta=100",
            "--set",
            "student.train.reduce_lr.patience=1",
        ])
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes off a terminal: {err:?}"
    );
    // Each line starts with an RFC 3339 timestamp: 2026-12-01T03:04:05...
    for line in err.lines().filter(|l| l.contains("INFO")) {
        let ts = line.split_whitespace().next().unwrap();
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.as_bytes()[10] == b'T',
            "no timestamp: {line}"
        );
    }
    assert!(
        err.contains("distilled epoch 2: ReduceLROnPlateau reducing the learning rate from 1.00e-2 to 1.00e-3"),
        "{err}"
    );
    assert!(err.contains("scratch epoch 2: ReduceLROnPlateau"), "{err}");
    let log = std::fs::read_to_string(dir.path().join("out/train.log")).unwrap();
    assert!(!log.contains('\u{1b}'));
    assert!(log.contains("teacher epoch 1/3: loss"), "{log}");
    assert!(
        log.contains("distilled epoch 2: ReduceLROnPlateau"),
        "{log}"
    );
}

#[test]
fn wrong_files_are_named_with_what_they_are_and_the_fix() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    run_ok(dir.path(), "run.toml", "out");
    std::fs::write(dir.path().join("README.md"), "# a readme\n\nnot a model\n").unwrap();
    let one_line_error = |args: &[&str], wants: &[&str]| {
        let out = kd_cli(args, dir.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for want in wants {
            assert!(err.contains(want), "{args:?}: lacks {want:?}: {err}");
        }
        err
    };
    let err = one_line_error(
        &["eval", "README.md"],
        &[
            "README.md: not a kd model file",
            "expected a model file of a run directory",
        ],
    );
    assert!(!err.contains("pretrained"), "{err}");
    let err = one_line_error(
        &["eval", "out/distiled.safetensors"],
        &[
            "out/distiled.safetensors: no such file",
            "expected a model file",
        ],
    );
    assert_eq!(err.matches("No such file").count(), 0, "{err}");
    one_line_error(
        &["eval", "out/checkpoints/distilled/last.safetensors"],
        &[
            "a training checkpoint",
            "use out/checkpoints/distilled/best.safetensors",
        ],
    );
    let err = one_line_error(
        &[
            "export",
            "out/distilled.safetensors",
            "--out",
            "missing/dir/model.pt",
        ],
        &["cannot write missing/dir/model.pt: the folder missing/dir does not exist"],
    );
    assert!(!err.contains(".tmp"), "{err}");
    // The checkpoint's best model is an ordinary model file.
    let out = kd_cli(
        &[
            "eval",
            "out/checkpoints/distilled/best.safetensors",
            "--data",
            "data",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn predict_reports_bad_images_and_predicts_the_rest() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    run_ok(dir.path(), "run.toml", "out");
    let gray = tch::Tensor::zeros([3, 12, 12], (tch::Kind::Uint8, tch::Device::Cpu));
    tch::vision::image::save(&gray, dir.path().join("good.png")).unwrap();
    std::fs::write(dir.path().join("bad.png"), "not an image").unwrap();
    let out = kd_cli(
        &[
            "predict",
            "out/distilled.safetensors",
            "good.png",
            "bad.png",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("good.png: "), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("error: bad.png: not an image"), "{err}");
    assert!(err.contains("1 of 2 images could not be read"), "{err}");

    let out = kd_cli(
        &[
            "predict",
            "out/distilled.safetensors",
            "good.png",
            "--top-k",
            "0",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected at least 1 class per image, got 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_outputs_follow_the_umask_like_model_files() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    run_ok(dir.path(), "run.toml", "out");
    let out = dir.path().join("out");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let model = mode(&out.join("distilled.safetensors"));
    for file in [
        "report.md",
        "report.json",
        "config.toml",
        "metrics.csv",
        "train.log",
    ] {
        assert_eq!(mode(&out.join(file)), model, "{file}");
    }
    // The run's log keeps the epoch lines though stderr showed warnings only (RUST_LOG=warn).
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(log.contains("teacher epoch 1/3: loss"), "{log}");
    let export = kd_cli(
        &["export", "out/distilled.safetensors", "--out", "model.pt"],
        dir.path(),
    );
    assert!(export.status.success(), "{}", stderr(&export));
    assert_eq!(mode(&dir.path().join("model.pt")), model);
}

#[test]
fn every_subcommand_shows_an_example_and_documents_its_options() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        "run", "check", "launch", "eval", "predict", "export", "config", "summary", "bench",
        "compare",
    ] {
        let out = kd_cli(&[cmd, "--help"], dir.path());
        let text = stdout(&out);
        assert!(out.status.success(), "{cmd}");
        assert!(
            text.contains("Example"),
            "{cmd} --help has no example: {text}"
        );
    }
    let help = stdout(&kd_cli(&["export", "--help"], dir.path()));
    assert!(
        help.contains("--format <FORMAT>") && help.contains("torch.jit.load"),
        "{help}"
    );
    let help = stdout(&kd_cli(&["bench", "--help"], dir.path()));
    assert!(help.contains("Images per step"), "{help}");
    let help = stdout(&kd_cli(&["run", "--help"], dir.path()));
    assert!(help.contains("--device <DEVICE>"), "{help}");
}

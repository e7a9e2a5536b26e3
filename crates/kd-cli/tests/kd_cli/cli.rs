//! `kd-cli` as a user runs it: a tiny end-to-end experiment on IDX files the test writes
//! (a learnable 4-class pattern task), and one-line errors for bad input.

use std::path::Path;

use crate::common::{kd_cli, read_json, run_ok, workspace_with, TINY_CONFIG};

/// A one-channel model saved by a tiny run (inputs `hw` x `hw` after its transform), built
/// from the file's metadata and weights by kd's libraries directly, and its transform; in
/// float32 (what `eval`, `predict` and exports compute by default, whatever precision the
/// run trained in), and with `run_layout` in the memory format the run evaluated it in
/// (else NCHW, as exports take it).
fn saved_model(
    weights: &Path,
    hw: usize,
    run_layout: bool,
) -> (kd_models::Model, kd_data::TransformConfig) {
    let meta = kd_models::metadata::read_metadata(weights).unwrap();
    let config: kd_models::ModelConfig = serde_json::from_str(&meta["kd.model"]).unwrap();
    let transform = serde_json::from_str(&meta["kd.transform"]).unwrap();
    let mut model = kd_models::Model::new(&config, 1, hw, 10, tch::Device::Cpu).unwrap();
    model.load(weights).unwrap();
    if run_layout && serde_json::from_str::<bool>(&meta["kd.channels_last"]).unwrap() {
        model.use_channels_last();
    }
    (model, transform)
}

#[test]
fn tiny_end_to_end_run_writes_a_complete_run_directory() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kd-cli failed: {stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    for role in ["teacher", "distilled", "scratch"] {
        assert!(table.contains(role), "table lacks {role}: {table}");
    }
    let run = dir.path().join("out");
    let report = read_json(&run.join("report.json"));
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    report_has_files_and_latencies(&run, &report, &table);
    // The quadrant task is easy: a trained teacher is far above chance (25%).
    assert!(
        models[0]["test_accuracy"].as_f64().unwrap() > 0.6,
        "teacher did not learn: {report}"
    );
    assert_eq!(report["train_images"], 200);
    assert_eq!(report["validation_images"], 40);
    metrics_and_events_have_every_epoch(&run);
    // report.md: the table, the settings and the environment.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    for needle in [
        "| distilled |",
        "## Settings",
        "## Environment",
        "libtorch 2.11",
        "git ",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    // The plots, where the machine has the font they are drawn with.
    if Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists() {
        for png in [
            "learning_curves.png",
            "lr_schedule.png",
            "confusion_distilled.png",
        ] {
            let bytes = std::fs::read(run.join(png)).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
        }
    }
    // The resolved config round-trips and carries the defaults that were filled in.
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        resolved.contains("restore_best_weights = true"),
        "{resolved}"
    );
}

/// Each model of a run's `report` names its file in `run` with its size, and has batch-1
/// latencies on one thread; the student's speedup is the ratio of the medians, and the
/// printed `table` shows the latency lines.
fn report_has_files_and_latencies(run: &Path, report: &serde_json::Value, table: &str) {
    let models = report["models"].as_array().unwrap();
    for m in models {
        let file = run.join(m["weights"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            m["file_bytes"].as_u64().unwrap()
        );
        let acc = m["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        // Batch-1 latency on one thread (the config's 1 thread is also "all").
        let l = &m["latency"];
        let (median, p99) = (
            l["one_thread"]["median_ms"].as_f64().unwrap(),
            l["one_thread"]["p99_ms"].as_f64().unwrap(),
        );
        assert!(median > 0.0 && p99 >= median, "{l}");
        assert_eq!(l["threads"], 1, "{l}");
        assert!(l["batch256_images_per_s"].as_f64().unwrap() > 0.0, "{l}");
    }
    let speedup = &report["student_speedup"];
    let teacher = report["models"][0]["latency"]["one_thread"]["median_ms"]
        .as_f64()
        .unwrap();
    let student = report["models"][1]["latency"]["one_thread"]["median_ms"]
        .as_f64()
        .unwrap();
    assert!(
        (speedup["one_thread"].as_f64().unwrap() - teacher / student).abs() < 1e-9,
        "{speedup}"
    );
    assert!(table.contains("batch-1 latency median / p99"), "{table}");
}

/// A tiny run's `metrics.jsonl`, `metrics.csv` and `events.jsonl` in `run`: one line per
/// epoch run (3 teacher + 2 distilled + 2 scratch), the distilled rows with the loss terms,
/// the three saved models in order.
fn metrics_and_events_have_every_epoch(run: &Path) {
    // One metrics line per epoch run: 3 teacher + 2 distilled + 2 scratch at most.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let phases: Vec<String> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["phase"].to_string())
        .collect();
    assert_eq!(phases.iter().filter(|p| p.contains("teacher")).count(), 3);
    assert_eq!(phases.len(), 7);
    // metrics.csv: a header and the same 7 epochs; the distilled rows carry the loss terms.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("model,epoch,loss,accuracy,val_loss,val_accuracy,val_cross_entropy,lr"),
        "{csv}"
    );
    assert!(rows[0].contains("student_loss") && rows[0].contains("distillation_loss"));
    assert_eq!(rows.len(), 8, "{csv}");
    assert!(rows.iter().any(|r| r.starts_with("distilled,2,")), "{csv}");
    // events.jsonl: at least the three saved models, in order.
    let saved: Vec<String> = std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == "saved")
        .map(|e| e["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(saved, ["teacher", "distilled", "scratch"]);
}

#[test]
fn bf16_channels_last_runs_save_standard_weights_and_report_precision_and_memory() {
    let config = format!("precision = \"bf16\"\nchannels_last = true\n{TINY_CONFIG}");
    let (dir, _) = workspace_with(&config);
    let report = run_ok(dir.path(), "run.toml", "out");
    assert_eq!(
        (
            report["precision"].as_str(),
            report["channels_last"].as_bool()
        ),
        (Some("bf16"), Some(true))
    );
    // At least libtorch's own footprint, and well under the 1.5 GB budget for this task.
    let peak = report["peak_rss_mib"].as_f64().unwrap();
    assert!((50.0..1536.0).contains(&peak), "peak RSS {peak} MiB");
    assert!(
        report["models"][0]["test_accuracy"].as_f64().unwrap() > 0.6,
        "bf16 teacher did not learn: {report}"
    );
    // The report's test accuracy is float32; the bf16 one is beside it, and `eval
    // --precision run` reproduces it from the file (same precision, same machine).
    let teacher = &report["models"][0];
    let in_bf16 = &teacher["test_in_run_precision"];
    assert_eq!(in_bf16["precision"], "bf16", "{teacher}");
    let eval = |precision: &str| {
        let out = kd_cli(
            &[
                "eval",
                "out/teacher.safetensors",
                "--data",
                "data",
                "--device",
                "cpu",
            ]
            .into_iter()
            .chain(["--precision", precision, "--json"])
            .collect::<Vec<_>>(),
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (run, f32) = (eval("run"), eval("f32"));
    assert_eq!(run["accuracy"], in_bf16["accuracy"]);
    assert_eq!(f32["accuracy"], teacher["test_accuracy"]);
    assert_eq!(
        (run["precision"].as_str(), f32["precision"].as_str()),
        (Some("bf16"), Some("f32"))
    );
    let table = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(
        table.contains("test acc in bf16 (the run's precision): teacher "),
        "{table}"
    );
    let (f32_cl, bf16) = (
        teacher["test_accuracy"].as_f64().unwrap(),
        in_bf16["accuracy"].as_f64().unwrap(),
    );
    a_float32_nchw_run_loads_the_weights(dir.path(), f32_cl, bf16);
}

/// The weights of `dir`'s bf16 channels-last run are ordinary row-major tensors: a float32
/// NCHW run loads its teacher. Its float32 accuracy differs from the run's (`f32_cl`) only by
/// the memory format's rounding; the bf16 one (`bf16`) by more.
fn a_float32_nchw_run_loads_the_weights(dir: &Path, f32_cl: f64, bf16: f64) {
    let plain = TINY_CONFIG.replace(
        "[teacher.model]",
        "[teacher]\ncheckpoint = \"out/teacher.safetensors\"\n[teacher.model]",
    );
    let plain = format!("precision = \"f32\"\nchannels_last = false\n{plain}");
    std::fs::write(dir.join("plain.toml"), plain).unwrap();
    let again = run_ok(dir, "plain.toml", "out2");
    assert!(
        again["models"][0]["test_in_run_precision"].is_null(),
        "{again}"
    );
    let nchw = again["models"][0]["test_accuracy"].as_f64().unwrap();
    assert!(
        (f32_cl - nchw).abs() <= 0.02,
        "f32 channels-last {f32_cl} vs f32 NCHW {nchw}"
    );
    assert!(
        (f32_cl - bf16).abs() <= 0.05,
        "f32 {f32_cl} vs bf16 {bf16} on the same weights"
    );
}

#[test]
fn config_default_prints_a_config_that_set_can_adjust() {
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(&["config", "default"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[student.train.reduce_lr]") && text.contains("# "),
        "{text}"
    );
    // The tiny config with overrides from the command line: they win over the file.
    let (dir, _) = workspace_with(TINY_CONFIG);
    let out = kd_cli(
        &[
            "run",
            "run.toml",
            "--out",
            "out",
            "--set",
            "student.train.epochs=1",
            "--set",
            "name=renamed",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_json(&dir.path().join("out/report.json"));
    assert_eq!(report["name"], "renamed");
    assert_eq!(report["models"][1]["epochs_run"], 1);
    let resolved = std::fs::read_to_string(dir.path().join("out/config.toml")).unwrap();
    assert!(resolved.contains("name = \"renamed\""), "{resolved}");
    // A bad override is a one-line error naming it, and nothing is written.
    let out = kd_cli(
        &[
            "run",
            "run.toml",
            "--out",
            "bad",
            "--set",
            "student.train.lrr=1",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--set student.train.lrr=1"), "{stderr}");
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn eval_reproduces_the_runs_test_accuracy_from_the_model_file_alone() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    let report = run_ok(dir.path(), "run.toml", "out");
    let out = kd_cli(
        &[
            "eval",
            "out/distilled.safetensors",
            "--data",
            "data",
            "--device",
            "cpu",
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
    let expected = report["models"][1]["test_accuracy"].as_f64().unwrap();
    assert!(
        (eval["accuracy"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{eval} vs {expected}"
    );
    let confusion: Vec<Vec<i64>> = serde_json::from_value(eval["confusion"].clone()).unwrap();
    assert_eq!(confusion.len(), 10, "Fashion-MNIST format: 10 classes");
    assert_eq!(
        confusion.iter().flatten().sum::<i64>(),
        80,
        "every test image counted once"
    );
    let diagonal: i64 = (0..10).map(|i| confusion[i][i]).sum();
    assert!((diagonal as f64 / 80.0 - expected).abs() < 1e-9);
    // The table form names each class row.
    let out = kd_cli(
        &[
            "eval",
            "out/scratch.safetensors",
            "--data",
            "data",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("accuracy") && text.contains("confusion"),
        "{text}"
    );

    eval_names_files_that_are_not_models(dir.path());
}

/// `eval` of a file that is not safetensors, and of another architecture's weights under a
/// student's metadata (next to the tiny run in `dir`): errors that name the file, no panic.
fn eval_names_files_that_are_not_models(dir: &Path) {
    std::fs::write(dir.join("junk.safetensors"), b"not a model").unwrap();
    let out = kd_cli(&["eval", "junk.safetensors", "--device", "cpu"], dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("junk.safetensors") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let student_meta =
        kd_models::metadata::read_metadata(&dir.join("out/distilled.safetensors")).unwrap();
    let teacher_bytes = std::fs::read(dir.join("out/teacher.safetensors")).unwrap();
    let forged =
        kd_models::metadata::with_metadata(Path::new("x"), &teacher_bytes, &student_meta).unwrap();
    std::fs::write(dir.join("forged.safetensors"), forged).unwrap();
    let out = kd_cli(
        &[
            "eval",
            "forged.safetensors",
            "--data",
            "data",
            "--device",
            "cpu",
        ],
        dir,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("forged.safetensors") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn exported_torchscript_runs_in_python_with_the_preprocessing_built_in() {
    use tch::{Device, Kind, Tensor};
    let (dir, _) = workspace_with(TINY_CONFIG);
    // Padding and normalization, so the built-in preprocessing is exercised.
    let out = kd_cli(
        &[
            "run",
            "run.toml",
            "--out",
            "out",
            "--set",
            "data.transform.pad_to=16",
            "--set",
            "data.transform.mean=[0.25]",
            "--set",
            "data.transform.std=[0.5]",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kd_cli(
        &[
            "export",
            "out/distilled.safetensors",
            "--format",
            "torchscript",
            "--out",
            "model.pt",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = dir.path().join("model.pt");

    // Reference: the saved model with the run's transform, applied by kd itself.
    let (model, transform) = saved_model(&dir.path().join("out/distilled.safetensors"), 16, false);
    // Three images of the native 12x12 size (another batch size than the trace's 2).
    let x = Tensor::linspace(0.0, 1.0, 3 * 144, (Kind::Float, Device::Cpu)).view([3, 1, 12, 12]);
    let expected = tch::no_grad(|| model.forward_t(&transform.apply_unit(&x), false));

    let module = tch::CModule::load(&exported).unwrap();
    let got = tch::no_grad(|| module.forward_ts(&[&x]).unwrap());
    assert!(
        got.allclose(&expected, 1e-5, 1e-5, false),
        "{got} vs {expected}"
    );

    let Some(python) = crate::common::venv_python(
        "exported_torchscript_runs_in_python_with_the_preprocessing_built_in",
    ) else {
        return;
    };
    python_computes_what_kd_does(&python, &exported, &expected);
}

/// PyTorch's `torch.jit.load` of `exported`, fed the three 12x12 test images of the test
/// above, computes `expected` (kd's logits) to 1e-4.
fn python_computes_what_kd_does(python: &Path, exported: &Path, expected: &tch::Tensor) {
    let script = format!(
        "import torch, json\nm = torch.jit.load({:?})\nx = torch.linspace(0, 1, 3 * 144).reshape(3, 1, 12, 12)\nprint(json.dumps(m(x).tolist()))",
        exported.display().to_string()
    );
    let py = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let stdout = String::from_utf8_lossy(&py.stdout);
    let rows: Vec<Vec<f64>> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let expected: Vec<Vec<f64>> = Vec::try_from(expected.to_kind(tch::Kind::Double)).unwrap();
    for (a, b) in rows.iter().flatten().zip(expected.iter().flatten()) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "python {a} vs kd {b}"
        );
    }
    assert_eq!(rows.len(), 3);
}

#[test]
fn predict_reads_png_files_and_agrees_with_the_model() {
    use tch::{Kind, Tensor};
    let (dir, _) = workspace_with(TINY_CONFIG);
    run_ok(dir.path(), "run.toml", "out");
    // Three test images as RGB PNGs (gray repeated: luma gives the bytes back exactly).
    let test = kd_data::load_mnist_family(&dir.path().join("data"))
        .unwrap()
        .test;
    let mut names = Vec::new();
    let mut stored = Vec::new();
    for i in 0..3 {
        let bytes = test
            .images()
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .copied()
            .collect::<Vec<u8>>();
        let gray = Tensor::from_slice(&bytes).view([1, 12, 12]);
        let name = format!("img{i}.png");
        tch::vision::image::save(&gray.repeat([3, 1, 1]), dir.path().join(&name)).unwrap();
        names.push(name);
        stored.push(gray);
    }
    let mut args = vec![
        "predict",
        "out/distilled.safetensors",
        "--top-k",
        "2",
        "--device",
        "cpu",
        "--json",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = kd_cli(&args, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predictions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let (model, transform) = saved_model(&dir.path().join("out/distilled.safetensors"), 12, true);
    let x = transform.apply(&Tensor::stack(&stored, 0));
    let probs = tch::no_grad(|| model.forward_t(&x, false).softmax(-1, Kind::Float));
    let names_of = kd_data::DatasetKind::FashionMnist.class_names().unwrap();
    for i in 0..3 {
        let top = &predictions[i]["top"];
        assert_eq!(top.as_array().unwrap().len(), 2);
        let best = probs.get(i as i64).argmax(0, false).int64_value(&[]);
        assert_eq!(top[0][0], names_of[best as usize], "{predictions}");
        let p = probs.double_value(&[i as i64, best]);
        assert!(
            (top[0][1].as_f64().unwrap() - p).abs() < 1e-5,
            "{predictions}"
        );
    }

    // Not an image, and no such file: errors naming the file, exit 1, no panic.
    std::fs::write(dir.path().join("fake.png"), "not an image").unwrap();
    for bad in ["fake.png", "missing.png"] {
        let out = kd_cli(
            &[
                "predict",
                "out/distilled.safetensors",
                bad,
                "--device",
                "cpu",
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(bad) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[test]
fn a_loaded_teacher_is_not_retrained() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    assert!(kd_cli(&["run", "run.toml", "--out", "first"], dir.path())
        .status
        .success());
    let config = TINY_CONFIG.replace(
        "[teacher.model]",
        "[teacher]\ncheckpoint = \"first/teacher.safetensors\"\n[teacher.model]",
    );
    std::fs::write(dir.path().join("load.toml"), config).unwrap();
    let out = kd_cli(&["run", "load.toml", "--out", "second"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &str| read_json(&dir.path().join(p));
    let (first, second) = (read("first/report.json"), read("second/report.json"));
    assert_eq!(second["models"][0]["epochs_run"], 0);
    assert_eq!(
        first["models"][0]["test_accuracy"],
        second["models"][0]["test_accuracy"]
    );
}

/// Runs `kd-cli run` on `config` and returns its stderr, asserting a clean failure.
pub(crate) fn run_fails(config: &str) -> String {
    let (dir, _) = workspace_with(config);
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "expected exit 1: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !dir.path().join("out").join("report.json").exists(),
        "a failed run must not write a report"
    );
    stderr
}

#[test]
fn bad_configs_are_one_line_errors_naming_the_key() {
    let cases = [
        (
            TINY_CONFIG.replace("alpha = 0.5", "alpha = 1.5"),
            "distill.alpha",
        ),
        (
            TINY_CONFIG.replace("temperature = 2.0", "temperature = 0.0"),
            "distill.temperature",
        ),
        (
            TINY_CONFIG.replace("lr = 0.01\n[student", "lr = -1.0\n[student"),
            "teacher.train.lr",
        ),
        (
            TINY_CONFIG.replace(
                "batch_size = 32\nlr = 0.01\n[distill",
                "batch_size = 0\nlr = 0.01\n[distill",
            ),
            "student.train.batch_size",
        ),
        (
            TINY_CONFIG.replace("seed = 3", "seed = 3\nsede = 4"),
            "unknown field `sede`",
        ),
        (
            TINY_CONFIG.replace("width = 4", "width = 4\nwdth = 4"),
            "unknown field `wdth`",
        ),
        (
            TINY_CONFIG.replace("blocks = 2", "blocks = 5"),
            "student.model.blocks",
        ),
        // CUDA graphs asked for on the CPU: refused before anything trains.
        (
            TINY_CONFIG
                .replace("seed = 3", "seed = 3\ndevice = \"cpu\"")
                .replace(
                    "batch_size = 32\nlr = 0.01\n[distill",
                    "batch_size = 32\nlr = 0.01\ncuda_graphs = true\n[distill",
                ),
            "student.train.cuda_graphs: expected true only with a CUDA device",
        ),
    ];
    for (config, key) in cases {
        let stderr = run_fails(&config);
        assert!(stderr.contains(key), "expected {key:?} in: {stderr}");
        assert!(
            stderr.contains("run.toml"),
            "expected the file name in: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    }
}

#[test]
fn missing_data_names_the_directory() {
    let (dir, _) = workspace_with(TINY_CONFIG);
    std::fs::remove_file(dir.path().join("data/t10k-labels-idx1-ubyte")).unwrap();
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("t10k-labels-idx1-ubyte"), "{stderr}");
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(&["run", "nope.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn env_reports_torch_version_and_device() {
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(&["env"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("torch         2.11.0"), "{text}");
    assert!(text.contains("threads"), "{text}");
}

#[test]
fn real_fashion_mnist_tiny_run_learns() {
    let Some(data) = crate::common::fashion_mnist("real_fashion_mnist_tiny_run_learns") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TINY_CONFIG
        .replace(
            "dir = \"data\"",
            &format!("dir = {:?}\ntrain_limit = 1200\ntest_limit = 500", data),
        )
        .replace("validation_holdout = 40", "validation_holdout = 200");
    std::fs::write(dir.path().join("real.toml"), config).unwrap();
    let report = run_ok(dir.path(), "real.toml", "out");
    assert_eq!(report["test_images"], 500);
    // Ten balanced classes: chance is 10%; three epochs on 1,000 real images reach far more.
    let teacher = report["models"][0]["test_accuracy"].as_f64().unwrap();
    assert!(
        teacher > 0.5,
        "teacher accuracy {teacher} on real Fashion-MNIST"
    );
}

#[test]
fn each_loss_is_selectable_by_name_and_recorded_in_the_report() {
    for (name, params) in [
        ("hinton", "alpha = 0.5\ntemperature = 3.0"),
        ("dkd", "beta = 2.0\nwarmup_epochs = 1"),
        ("lskd", "kd_weight = 2.0"),
    ] {
        let config = TINY_CONFIG.replace(
            "[distill]\nalpha = 0.5\ntemperature = 2.0",
            &format!("[distill]\nloss = \"{name}\"\n{params}"),
        );
        let (dir, _) = workspace_with(&config);
        let report = run_ok(dir.path(), "run.toml", "out");
        let objective = &report["models"][1]["objective"];
        assert_eq!(objective["loss"], name, "{report}");
        assert_eq!(objective["teacher_logits"], "cached, f32");
        assert_eq!(report["models"][2]["objective"]["loss"], "cross-entropy");
        let metrics = std::fs::read_to_string(dir.path().join("out/metrics.jsonl")).unwrap();
        if name == "dkd" {
            assert!(
                metrics.contains("\"tckd\"") && metrics.contains("\"nckd\""),
                "{metrics}"
            );
        }
    }
}

#[test]
fn augmented_students_are_taught_live_and_the_cache_can_be_forced() {
    let augmented = TINY_CONFIG.replace(
        "[distill]",
        "[student.train.augment]\nhflip = true\n[distill]",
    );
    let (dir, _) = workspace_with(&augmented);
    let report = run_ok(dir.path(), "run.toml", "out");
    assert_eq!(report["models"][1]["objective"]["teacher_logits"], "live");

    let forced = augmented.replace(
        "[teacher.model]",
        "[teacher.cache]\nmode = \"always\"\ndtype = \"f16\"\n[teacher.model]",
    );
    std::fs::write(dir.path().join("forced.toml"), forced).unwrap();
    let report = run_ok(dir.path(), "forced.toml", "forced");
    assert_eq!(
        report["models"][1]["objective"]["teacher_logits"],
        "cached, f16"
    );
}

#[test]
fn a_loss_with_a_foreign_key_is_a_one_line_error() {
    let config = TINY_CONFIG.replace(
        "[distill]\nalpha = 0.5",
        "[distill]\nloss = \"hinton\"\nbeta = 8.0\nalpha = 0.5",
    );
    let stderr = run_fails(&config);
    assert!(
        stderr.contains("unknown field `beta`") && stderr.contains("hinton"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn fitnets_hints_train_a_regressor_that_is_not_saved() {
    let config = TINY_CONFIG.replace(
        "[distill]\nalpha = 0.5\ntemperature = 2.0",
        "[distill]\nloss = \"fitnets\"\nstudent_layer = \"features.2\"\nteacher_layer = \"features.3\"\nhint_weight = 10.0",
    );
    let (dir, _) = workspace_with(&config);
    let report = run_ok(dir.path(), "run.toml", "out");
    let (distilled, scratch) = (&report["models"][1], &report["models"][2]);
    assert_eq!(distilled["objective"]["loss"], "fitnets");
    assert_eq!(distilled["objective"]["teacher_logits"], "live");
    // The 1x1 regressor (4 -> 8 channels) trained with the student but is not part of it.
    assert_eq!(distilled["parameters"], scratch["parameters"]);
    assert_eq!(distilled["file_bytes"], scratch["file_bytes"]);
    let metrics = std::fs::read_to_string(dir.path().join("out/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"hint_loss\""), "{metrics}");

    let bad = config.replace(
        "teacher_layer = \"features.3\"",
        "teacher_layer = \"features.99\"",
    );
    let stderr = run_fails(&bad);
    assert!(
        stderr.contains("distill.teacher_layer")
            && stderr.contains("features.99")
            && stderr.contains("features.7"),
        "{stderr}"
    );
}

#[test]
fn bench_prints_one_json_line_per_mode() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--mode",
        "student,distill-cached,eval",
        "--batch",
        "8",
    ];
    let out = kd_cli(
        &[
            &args[..],
            &["--steps", "4", "--warmup", "0", "--device", "cpu"],
        ]
        .concat(),
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let modes: Vec<&str> = lines.iter().map(|l| l["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["student", "distill-cached", "eval"]);
    for l in &lines {
        assert_eq!(
            (l["batch"].as_u64(), l["steps"].as_u64()),
            (Some(8), Some(4))
        );
        assert_eq!(
            (l["device"].as_str(), l["precision"].as_str()),
            (Some("cpu"), Some("f32"))
        );
        assert!(l["images_per_s"].as_f64().unwrap() > 0.0);
    }
}

/// `bench --precision bf16 --channels-last` says so in its line; a precision it does not
/// know and CUDA graphs on the CPU are errors naming the flag.
#[test]
fn bench_flags_are_recorded_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = kd_cli(
        &[
            "bench",
            "--device",
            "cpu",
            "--precision",
            "bf16",
            "--mode",
            "student",
            "--batch",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--channels-last",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(
        (line["precision"].as_str(), line["impl"].as_str()),
        (Some("bf16"), Some("kd-cl"))
    );
    let out = kd_cli(
        &["bench", "--device", "cpu", "--precision", "fp8"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected f32, bf16 or f16"), "{stderr}");
    let out = kd_cli(
        &[
            "bench",
            "--device",
            "cpu",
            "--mode",
            "student",
            "--cuda-graphs",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cuda-graphs: needs --device cuda"),
        "{stderr}"
    );
}

/// Each phase of a run draws from its own generator stream: a teacher with dropout (whose
/// training draws random numbers) trains to the same weights whatever the distillation loss,
/// FitNets' check of its hinted layers included (one machine, one thread count).
#[test]
fn the_teacher_trains_the_same_whatever_the_distillation_loss() {
    let config = TINY_CONFIG.replace("dropout = 0.0", "dropout = 0.3");
    let (dir, _) = workspace_with(&config);
    let runs: [(&str, &[&str]); 2] = [
        ("kd", &[]),
        (
            "fitnets",
            &[
                "--set",
                "distill.loss=fitnets",
                "--set",
                "distill.teacher_layer=features.2",
                "--set",
                "distill.student_layer=features.1",
            ],
        ),
    ];
    for (out, sets) in runs {
        let mut args = vec!["run", "run.toml", "--out", out];
        args.extend_from_slice(sets);
        let output = kd_cli(&args, dir.path());
        assert!(
            output.status.success(),
            "{out}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let teacher = |out: &str| std::fs::read(dir.path().join(out).join("teacher.safetensors"));
    assert!(
        teacher("kd").unwrap() == teacher("fitnets").unwrap(),
        "the FitNets run trained another teacher"
    );
    // The students did learn differently (the losses differ), so the runs are not one run.
    let student = |out: &str| std::fs::read(dir.path().join(out).join("distilled.safetensors"));
    assert!(student("kd").unwrap() != student("fitnets").unwrap());
}

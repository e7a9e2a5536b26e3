//! A run on an image folder, as a user with their own images starts it: PNG files in one
//! folder per class (names that are not kd's), `dataset = "image-folder"`, and every tool
//! after the run (`eval`, `predict`) speaking of the folder's classes.

use std::path::Path;

use crate::common::{kd_cli, read_json, run_ok, TINY_CONFIG};

/// The folder names of the quadrants, in quadrant order (sorted, they are another order).
const NAMES: [&str; 4] = ["top-left", "top-right", "bottom-left", "bottom-right"];

/// The 4-class quadrant task of `crate::common::write_dataset` as 12x12 gray PNGs, written under
/// `dir/<split>/<class>/`, `n` images per split; returns the pixels (`[n, 12, 12]`) and
/// sorted-name labels, as PyTorch gets them in the TorchScript test.
fn write_folder(dir: &Path, split: &str, n: usize, salt: usize) -> (Vec<u8>, Vec<u8>) {
    let names = NAMES;
    let mut sorted = NAMES;
    sorted.sort();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
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
        pixels.extend_from_slice(image.as_raw());
        labels.push(sorted.iter().position(|s| *s == names[k]).unwrap() as u8);
    }
    (pixels, labels)
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

    // eval re-reads the folder (from its cache) and names the folder's classes; the model
    // file records the folder, so no --data is needed, from any directory.
    let out = kd_cli(
        &["eval", "distilled.safetensors", "--json"],
        &dir.path().join("out"),
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

    a_moved_folder_is_named_with_the_way_to_give_another(dir.path());
}

/// The image folder of `dir`'s run moves: `eval` says where the path it read came from
/// (the model file) and how to give another, which then works.
fn a_moved_folder_is_named_with_the_way_to_give_another(dir: &Path) {
    std::fs::rename(dir.join("images"), dir.join("moved")).unwrap();
    let out = kd_cli(&["eval", "out/distilled.safetensors"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("recorded in its file") && stderr.contains("--data"),
        "{stderr}"
    );
    let moved = ["eval", "out/distilled.safetensors", "--data", "moved"];
    assert!(kd_cli(&moved, dir).status.success());
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

/// Trains a small CNN on the folder's training pixels in plain PyTorch, saves it with
/// `torch.jit.save(torch.jit.trace(...))`, and prints its accuracy on the test pixels, with
/// the module file's SHA-256; exports the same network with `torch.onnx.export` (opset 17,
/// dynamic batch), and again with its 4 logits placed at classes 10, 500, 999 and 3 of 1000
/// outputs (the others -30), for a class map. Also writes the bad teachers: a `state_dict`
/// saved with `torch.save`, a traced module with 1000 outputs, one that takes RGB images and
/// one whose forward takes a second input.
const TEACHER_PY: &str = r#"
import hashlib, sys, torch
torch.manual_seed(0)
d = sys.argv[1]
def load(name, n):
    x = torch.frombuffer(bytearray(open(f"{d}/{name}.pixels", "rb").read()), dtype=torch.uint8)
    y = torch.frombuffer(bytearray(open(f"{d}/{name}.labels", "rb").read()), dtype=torch.uint8)
    return (x.float() / 255).reshape(n, 1, 12, 12), y.long()
xs, ys = load("train", 240)
xt, yt = load("test", 80)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(8 * 36, 4))
opt = torch.optim.Adam(net.parameters(), 1e-2)
for step in range(150):
    i = torch.randint(0, 240, (32,))
    loss = torch.nn.functional.cross_entropy(net(xs[i]), ys[i])
    opt.zero_grad(); loss.backward(); opt.step()
net.eval()
module = torch.jit.trace(net, xt[:2])
torch.jit.save(module, f"{d}/teacher.pt")
torch.onnx.export(net, xt[:2], f"{d}/teacher.onnx", opset_version=17, dynamo=False,
                  input_names=["images"], output_names=["logits"],
                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
with torch.no_grad():
    acc = (module(xt).argmax(1) == yt).float().mean().item()
digest = hashlib.sha256(open(f"{d}/teacher.pt", "rb").read()).hexdigest()
print(f"{acc:.6f} {digest}")
torch.save(net.state_dict(), f"{d}/state_dict.pth")
wide = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 1000)).eval()
torch.jit.save(torch.jit.trace(wide, xt[:2]), f"{d}/imagenet.pt")
rgb = torch.nn.Sequential(
    torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
    torch.nn.Flatten(), torch.nn.Linear(4, 4)).eval()
torch.jit.save(torch.jit.trace(rgb, torch.rand(2, 3, 12, 12)), f"{d}/rgb.pt")
place = torch.nn.Linear(4, 1000)
with torch.no_grad():
    place.weight.zero_(); place.bias.fill_(-30.0)
    for k, j in enumerate([10, 500, 999, 3]):
        place.weight[j, k] = 1.0; place.bias[j] = 0.0
mapped = torch.nn.Sequential(net, place).eval()
torch.jit.save(torch.jit.trace(mapped, xt[:2]), f"{d}/imagenet_mapped.pt")
class TwoInputs(torch.nn.Module):
    def forward(self, x, scale: float):
        return x.flatten(1)[:, :4] * scale
torch.jit.save(torch.jit.script(TwoInputs()), f"{d}/two_inputs.pt")
"#;

#[test]
fn a_pytorch_teacher_teaches_and_kd_measures_its_accuracy_as_pytorch_does() {
    let test = "a_pytorch_teacher_teaches_and_kd_measures_its_accuracy_as_pytorch_does";
    let Some(python) = crate::common::venv_python(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (pytorch_accuracy, digest) = pytorch_teachers(&python, dir.path());

    let config = |teacher: &str| {
        TINY_CONFIG.replace(
            "[data]\ndir = \"data\"\nvalidation_holdout = 40",
            "[data]\ndataset = \"image-folder\"\ndir = \"images\"\n[data.image_folder]\nimage_size = 12\nchannels = 1",
        )
        .replace("[teacher.model]", &format!("[teacher]\ntorchscript = \"{teacher}\"\n[teacher.model]"))
    };
    std::fs::write(dir.path().join("run.toml"), config("teacher.pt")).unwrap();
    let report = run_ok(dir.path(), "run.toml", "out");
    let teacher = &report["models"][0];
    assert_eq!(teacher["architecture"], "torchscript");
    assert!(
        teacher["pretrained"].as_str().unwrap().contains(&digest),
        "{teacher}"
    );
    // Both float32: the report's test accuracy is, whatever precision `auto` picked.
    let kd_accuracy = teacher["test_accuracy"].as_f64().unwrap();
    assert!(
        (kd_accuracy - pytorch_accuracy).abs() < 1e-6,
        "kd measured {kd_accuracy}, PyTorch {pytorch_accuracy}"
    );
    assert_eq!(
        teacher["epochs_run"], 0,
        "a TorchScript teacher is not trained"
    );
    assert!(!dir.path().join("out/teacher.safetensors").exists());

    the_onnx_export_teaches_as_the_torchscript_one(dir.path(), &config, &report);
    an_ensemble_of_both_exports_teaches_and_scores_each(dir.path(), &config, pytorch_accuracy);
    check_describes_the_torchscript_teacher(dir.path());
    the_teacher_file_is_evaluated_and_timed(dir.path(), pytorch_accuracy);
    bad_teachers_are_refused_by_check_and_run(dir.path(), &config);
    a_class_map_lets_a_teacher_of_1000_classes_teach(dir.path(), &config, pytorch_accuracy);
    // FitNets needs a kd teacher's named layers.
    let args = [
        "run",
        "run.toml",
        "--out",
        "bad",
        "--set",
        "distill.loss=fitnets",
    ];
    let out = kd_cli(&args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("teacher.pt has none"), "{stderr}");
}

/// Writes the image folder (and its pixels and labels for Python) under `dir` and runs
/// [`TEACHER_PY`] there; returns the PyTorch teacher's test accuracy and its file's SHA-256.
fn pytorch_teachers(python: &Path, dir: &Path) -> (f64, String) {
    let images = dir.join("images");
    for (split, n, salt) in [("train", 240, 0), ("val", 40, 2), ("test", 80, 1)] {
        let (pixels, labels) = write_folder(&images, split, n, salt);
        std::fs::write(dir.join(format!("{split}.pixels")), pixels).unwrap();
        std::fs::write(dir.join(format!("{split}.labels")), labels).unwrap();
    }
    let script = dir.join("teacher.py");
    std::fs::write(&script, TEACHER_PY).unwrap();
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let (accuracy, digest) = printed.trim().split_once(' ').unwrap();
    let accuracy: f64 = accuracy.parse().unwrap();
    assert!(
        accuracy > 0.9,
        "the PyTorch teacher did not learn: {accuracy}"
    );
    (accuracy, digest.to_string())
}

/// `eval teacher.pt --config run.toml` measures PyTorch's accuracy; without the config it is
/// refused, naming the flag; `bench --mode latency` times it in libtorch.
fn the_teacher_file_is_evaluated_and_timed(dir: &Path, pytorch_accuracy: f64) {
    let out = kd_cli(
        &["eval", "teacher.pt", "--config", "run.toml", "--json"],
        dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - pytorch_accuracy).abs() < 1e-6,
        "eval measured {accuracy}, PyTorch {pytorch_accuracy}"
    );
    assert_eq!(report["images"], 80);
    let out = kd_cli(&["eval", "teacher.pt"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("teacher.pt") && stderr.contains("--config CONFIG"),
        "{stderr}"
    );
    let args = [
        "bench",
        "--mode",
        "latency",
        "teacher.pt",
        "--config",
        "run.toml",
    ];
    let out = kd_cli(&args, dir);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("teacher.pt") && stdout.contains("libtorch f32"),
        "{stdout}"
    );
}

/// The same network exported to ONNX (`teacher.source = "teacher.onnx"`, run by tract)
/// gives the TorchScript run's teacher accuracy and the same cached-logit student run: its
/// logits agree to float rounding (1e-4: kd-onnx's `teacher` tests), so the distilled
/// student's test accuracy is the TorchScript run's to one test image.
fn the_onnx_export_teaches_as_the_torchscript_one(
    dir: &Path,
    config: &dyn Fn(&str) -> String,
    torchscript: &serde_json::Value,
) {
    let text = config("teacher.onnx").replace("torchscript = ", "source = ");
    std::fs::write(dir.join("onnx.toml"), text).unwrap();
    let report = run_ok(dir, "onnx.toml", "onnx");
    let (teacher, script_teacher) = (&report["models"][0], &torchscript["models"][0]);
    assert_eq!(teacher["architecture"], "onnx");
    assert!(teacher["pretrained"]
        .as_str()
        .unwrap()
        .starts_with("ONNX teacher.onnx (sha256 "));
    assert_eq!(teacher["test_accuracy"], script_teacher["test_accuracy"]);
    let student = |r: &serde_json::Value| r["models"][1]["test_accuracy"].as_f64().unwrap();
    let gap = (student(&report) - student(torchscript)).abs();
    assert!(gap <= 1.0 / 80.0 + 1e-9, "distilled students {gap} apart");
    let resolved = std::fs::read_to_string(dir.join("onnx/config.toml")).unwrap();
    assert!(resolved.contains("onnx = \"teacher.onnx\""), "{resolved}");
}

/// `[[teacher.ensemble]]` of the TorchScript (weight 1) and the ONNX export (weight 3) of
/// one network: the report names both files, their normalized weights and each one's test
/// accuracy (PyTorch's); the ensemble of two equal members scores as either. Bad weights
/// and a second teacher beside the ensemble are refused before training.
fn an_ensemble_of_both_exports_teaches_and_scores_each(
    dir: &Path,
    config: &dyn Fn(&str) -> String,
    pytorch_accuracy: f64,
) {
    let members = |w: f64| {
        format!("[[teacher.ensemble]]\nsource = \"teacher.pt\"\n[[teacher.ensemble]]\nsource = \"teacher.onnx\"\nweight = {w:?}\n")
    };
    let ensemble = |w: f64| {
        config("teacher.pt").replace("[teacher]\ntorchscript = \"teacher.pt\"\n", &members(w))
    };
    std::fs::write(dir.join("ensemble.toml"), ensemble(3.0)).unwrap();
    let report = run_ok(dir, "ensemble.toml", "ensemble");
    let teacher = &report["models"][0];
    assert_eq!(teacher["architecture"], "ensemble");
    let origin = teacher["pretrained"].as_str().unwrap();
    assert!(
        origin.starts_with("ensemble (probability) of teacher.pt (sha256 ")
            && origin.contains("teacher.onnx (sha256 "),
        "{origin}"
    );
    let scores = teacher["members"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    for (score, weight) in scores.iter().zip([0.25, 0.75]) {
        assert_eq!(score["weight"], weight);
        assert!((score["test_accuracy"].as_f64().unwrap() - pytorch_accuracy).abs() < 1e-6);
    }
    assert!((teacher["test_accuracy"].as_f64().unwrap() - pytorch_accuracy).abs() < 1e-6);
    // Two exports of one network: the members agree (to ties their rounding may break).
    let agreement = teacher["card"]["member_agreement"].as_f64().unwrap();
    assert!(agreement >= 0.99, "{agreement}");
    assert_eq!(teacher["card"]["files"].as_array().unwrap().len(), 2);

    std::fs::write(dir.join("bad.toml"), ensemble(-1.0)).unwrap();
    let out = kd_cli(&["check", "bad.toml"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("teacher.ensemble.weight: expected finite weights >= 0"),
        "{stderr}"
    );
    let both = ensemble(1.0).replace(
        "[teacher.model]",
        "[teacher]\nonnx = \"teacher.onnx\"\n[teacher.model]",
    );
    std::fs::write(dir.join("bad.toml"), both).unwrap();
    let out = kd_cli(&["check", "bad.toml"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("teacher.onnx and teacher.ensemble: expected one teacher file"),
        "{stderr}"
    );
}

/// `check` on `dir`'s `run.toml` describes the TorchScript teacher the run uses, not
/// `teacher.model`.
fn check_describes_the_torchscript_teacher(dir: &Path) {
    let out = kd_cli(&["check", "run.toml"], dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("teacher: TorchScript module teacher.pt")
            && stdout.contains("TorchScript module teacher.pt: ")
            && !stdout.contains("random initialization, cnn")
            && !stdout.contains("teacher: trained"),
        "{stdout}"
    );
}

/// Bad TorchScript teachers fail `check` and `run` alike, before any training, naming the
/// file and what was expected (for one that rejects the images: torch's reason and the keys
/// to look at).
fn bad_teachers_are_refused_by_check_and_run(dir: &Path, config: &dyn Fn(&str) -> String) {
    std::fs::write(dir.join("notes.txt"), "not a model").unwrap();
    let rgb = "expected input[2, 1, 12, 12] to have 3 channels";
    for (file, expect) in [
        ("state_dict.pth", "not a TorchScript module"),
        ("notes.txt", "not a TorchScript module"),
        (
            "imagenet.pt",
            "the teacher returns 1000 classes, the dataset has 4: set teacher.class_map",
        ),
        ("rgb.pt", rgb),
        ("two_inputs.pt", "missing value for argument 'scale'"),
    ] {
        std::fs::write(dir.join("bad.toml"), config(file)).unwrap();
        for command in ["check", "run"] {
            let out = kd_cli(&[command, "bad.toml", "--out", "bad"], dir);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {file}: {stderr}");
            assert!(
                stderr.contains(file) && stderr.contains(expect),
                "{command} {file}: {stderr}"
            );
            if file == "rgb.pt" {
                assert!(
                    stderr.contains("data.image_folder.channels")
                        && !stderr.contains("failed in the TorchScript interpreter"),
                    "{stderr}"
                );
            }
            assert!(
                !dir.join("bad/checkpoints").exists(),
                "{file}: training started"
            );
        }
    }
}

/// The trained teacher behind 1000 outputs teaches through `teacher.class_map = [10, 500,
/// 999, 3]` with PyTorch's accuracy, and the report says what was mapped; an index beyond
/// the teacher's outputs is refused before training, naming it and the file.
fn a_class_map_lets_a_teacher_of_1000_classes_teach(
    dir: &Path,
    config: &dyn Fn(&str) -> String,
    pytorch_accuracy: f64,
) {
    let mapped = |map: &str| {
        config("imagenet_mapped.pt").replace(
            "torchscript = \"imagenet_mapped.pt\"\n",
            &format!("torchscript = \"imagenet_mapped.pt\"\nclass_map = {map}\n"),
        )
    };
    std::fs::write(dir.join("mapped.toml"), mapped("[10, 500, 999, 3]")).unwrap();
    let report = run_ok(dir, "mapped.toml", "mapped");
    let teacher = &report["models"][0];
    let accuracy = teacher["test_accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - pytorch_accuracy).abs() < 1e-6,
        "kd measured {accuracy}, PyTorch {pytorch_accuracy}"
    );
    let origin = teacher["pretrained"].as_str().unwrap();
    assert!(
        origin.contains("teacher classes 1000 -> 4 (4 used)"),
        "{origin}"
    );

    std::fs::write(dir.join("bad.toml"), mapped("[10, 500, 1000, 3]")).unwrap();
    let out = kd_cli(&["run", "bad.toml", "--out", "bad"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("imagenet_mapped.pt")
            && stderr.contains("teacher.class_map")
            && stderr.contains("teacher class 1000"),
        "{stderr}"
    );
    assert!(!dir.join("bad/checkpoints").exists(), "training started");
}

//! A run with a transfer set (Hinton et al. 2015, sections 2 and 6) and consistent teaching
//! (Beyer et al. 2022), as a user configures them: the distilled student also learns from
//! the training images outside its labelled subset, through the teacher alone, with the
//! teacher live on the same mixed batches; the scratch student sees the labelled images
//! only, and the report and `check` say so.

use crate::common::{kd_cli, run_ok, workspace_with, TINY_CONFIG};

fn config() -> String {
    let config = TINY_CONFIG
        .replace(
            "[student.model]",
            "[student]\ntrain_images = 40\nunlabeled = \"rest\"\nunlabeled_images = 100\n[student.model]",
        )
        .replace(
            "[distill]\n",
            "[distill]\nloss = \"hinton\"\nteacher_views = \"same\"\nmixup = 0.4\n",
        );
    assert!(config.contains("unlabeled = \"rest\"") && config.contains("mixup = 0.4"));
    config
}

#[test]
fn the_distilled_student_alone_learns_from_the_unlabeled_rest_with_a_live_teacher() {
    let (dir, _) = workspace_with(&config());
    let report = run_ok(dir.path(), "run.toml", "out");
    let model = |role: &str| {
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == role)
            .unwrap()
            .clone()
    };
    // 240 images, 40 held out for validation: 200 training images, 40 of them labelled for
    // the students, 100 of the other 160 unlabeled for the distilled one.
    let (teacher, distilled, scratch) = (model("teacher"), model("distilled"), model("scratch"));
    assert_eq!(
        (
            teacher["labelled_images"].as_u64(),
            teacher["unlabeled_images"].as_u64()
        ),
        (Some(200), Some(0))
    );
    assert_eq!(
        (
            distilled["labelled_images"].as_u64(),
            distilled["unlabeled_images"].as_u64()
        ),
        (Some(40), Some(100))
    );
    assert_eq!(
        (
            scratch["labelled_images"].as_u64(),
            scratch["unlabeled_images"].as_u64()
        ),
        (Some(40), Some(0))
    );
    let objective = &distilled["objective"];
    assert_eq!(objective["teacher_logits"], "live", "{objective}");
    assert_eq!(objective["teacher_views"], "same", "{objective}");
    assert_eq!(objective["mixup"], 0.4, "{objective}");
    // The resolved config keeps the keys, and `check` reads it back and says what runs.
    let resolved = std::fs::read_to_string(dir.path().join("out/config.toml")).unwrap();
    assert!(
        resolved.contains("unlabeled = \"rest\"") && resolved.contains("mixup = 0.4"),
        "{resolved}"
    );
    let out = kd_cli(&["check", "out/config.toml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("40 labelled (the distilled one also on 100 unlabeled"),
        "{text}"
    );
    assert!(text.contains("mixup 0.4, the teacher live"), "{text}");
}

#[test]
fn a_config_that_cannot_teach_unlabeled_images_is_refused_before_training() {
    // "rest" with every image labelled: there is no rest.
    let no_rest = config().replace("train_images = 40\n", "");
    let (dir, _) = workspace_with(&no_rest);
    let out = kd_cli(&["run", "run.toml", "--out", "out"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("student.unlabeled = \"rest\""),
        "{err}"
    );
    assert!(!dir.path().join("out/teacher.safetensors").exists());
    // mixup needs the teacher live: a forced logit cache is a contradiction named by key.
    let cached = config().replace(
        "[distill]\n",
        "[teacher.cache]\nmode = \"always\"\n[distill]\n",
    );
    let (dir, _) = workspace_with(&cached);
    let out = kd_cli(&["check", "run.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("teacher.cache.mode"),
        "{err}"
    );
    // An unknown teacher view names its key.
    let unknown = config().replace("teacher_views = \"same\"", "teacher_views = \"both\"");
    let (dir, _) = workspace_with(&unknown);
    let out = kd_cli(&["check", "run.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("distill.teacher_views"),
        "{err}"
    );
}

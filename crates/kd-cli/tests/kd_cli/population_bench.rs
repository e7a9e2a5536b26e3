//! `kd-cli bench --mode population`: one JSON line per population size, then the table;
//! its arithmetic rate counts a training image of the quickstart student as three forward
//! passes; bad sizes, layouts and mixed modes are refused.

use crate::common::kd_cli;

/// Multiply-adds ×2 of three forward passes of the quickstart student (3 blocks of two 3x3
/// convs, width 16, 28x28x1, 10 classes), by hand: per image, 28²·16·9 (first conv) +
/// 28²·16·16·9 + 2·14²·16·16·9 + 2·7²·16·16·9 = 3,048,192 multiply-adds, + 16·10 for the
/// dense layer.
const TRAINING_FLOP_PER_IMAGE: f64 = 3.0 * 2.0 * (3_048_192.0 + 160.0);

#[test]
fn population_bench_prints_a_line_per_size_and_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--mode",
        "population",
        "--members",
        "1,3",
        "--batch",
        "8",
        "--steps",
        "2",
        "--rounds",
        "1",
        "--layout",
        "members",
        "--device",
        "cpu",
    ];
    let out = kd_cli(&args, dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sizes: Vec<u64> = lines
        .iter()
        .map(|l| l["members"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 3]);
    for l in &lines {
        let (solo, fused) = (
            l["solo_images_per_s"].as_f64().unwrap(),
            l["fused_images_per_s"].as_f64().unwrap(),
        );
        assert!(solo > 0.0 && fused > 0.0);
        assert!((l["speedup"].as_f64().unwrap() - fused / solo).abs() < 1e-9);
        let flop = l["fused_gflops"].as_f64().unwrap() * 1e9 / fused;
        assert!(
            (flop / TRAINING_FLOP_PER_IMAGE - 1.0).abs() < 1e-9,
            "{flop}"
        );
        assert_eq!((&l["batch"], &l["layout"]), (&8.into(), &"members".into()));
    }
    assert!(
        stdout.contains("| K | precision | layout |") && stdout.contains("| 3 | f32 | members |"),
        "{stdout}"
    );

    bad_arguments_are_refused(dir.path());
}

/// Sizes of 0, other modes beside it and unknown layouts: an error naming the flag.
fn bad_arguments_are_refused(dir: &std::path::Path) {
    for (bad, says) in [
        (
            &["--members", "0"][..],
            "--members, --steps, --batch: expected at least 1",
        ),
        (
            &["--mode", "population,student"][..],
            "--mode population: time populations alone",
        ),
        (
            &["--layout", "im2col"][..],
            "expected grouped or members, got \"im2col\"",
        ),
    ] {
        let out = kd_cli(
            &[
                &["bench", "--mode", "population", "--device", "cpu"][..],
                bad,
            ]
            .concat(),
            dir,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{stderr}");
    }
}

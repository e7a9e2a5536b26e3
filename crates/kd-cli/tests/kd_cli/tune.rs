//! `kd-cli tune` as a user meets it, on the tiny experiment (one thread per process, so
//! that results are bit-identical on one machine however the work is split): a tune
//! SIGKILLed in its second rung and resumed gives the leaderboard of one uninterrupted
//! process, and so do two shards writing to one folder and `tune.workers = 2` (trials
//! alone), digit for digit; fused populations rank as trials alone do, to rounding;
//! selection never reads the test set; a failing configuration is reported, not fatal; bad
//! tunes are one-line errors before anything is written.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{kd_cli, read_json, spawn_kd_cli, workspace_with, TINY_CONFIG};

/// The tune's space: 4 configurations.
const SPACE: &str = "[tune.space]\n\"distill.loss\" = [\"hinton\", \"dkd\"]\n\"distill.temperature\" = [2.0, 4.0]\n";

/// The tiny experiment as a tune: 4 configurations × 2 seeds, rungs of 1 and `last` epochs.
fn tune_config(last: usize) -> String {
    let section = format!("[tune]\nseeds = [1, 2]\nrungs = [1, {last}]\neta = 2\n");
    format!("{TINY_CONFIG}{section}{SPACE}")
}

fn ok(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The report of the tune in `dir`: its Markdown and its JSON (neither holds a timing).
fn leaderboard(dir: &Path) -> (String, serde_json::Value) {
    let md = std::fs::read_to_string(dir.join("tune.md")).unwrap();
    (md, read_json(&dir.join("tune.json")))
}

#[test]
fn a_tune_killed_in_its_second_rung_resumes_to_the_leaderboard_of_one_left_alone() {
    let (dir, _) = workspace_with(&tune_config(30));
    let cwd = dir.path();
    ok(kd_cli(&["tune", "run.toml", "--out", "whole"], cwd), "tune");
    let expected = leaderboard(&cwd.join("whole"));
    assert_eq!(expected.1["complete"], true);
    assert_eq!(expected.1["rows"].as_array().unwrap().len(), 4);

    let mut child = spawn_kd_cli(&["tune", "run.toml", "--out", "cut"], cwd);
    let rung2 = cwd.join("cut/results/rung-2");
    let started = Instant::now();
    while std::fs::read_dir(&rung2).map_or(0, |d| d.count()) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the tune ended first");
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(2));
    }
    // `Child::kill` is SIGKILL on Unix: nothing is flushed or cleaned up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cwd.join("cut/tune.md").exists(), "killed before the end");
    let done = std::fs::read_dir(&rung2).unwrap().count();
    assert!(done < 4, "killed during the second rung ({done} of 4 done)");

    let again = kd_cli(&["tune", "run.toml", "--out", "cut"], cwd);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("--resume"), "{err}");
    ok(
        kd_cli(&["tune", "run.toml", "--out", "cut", "--resume"], cwd),
        "resume",
    );
    assert_eq!(leaderboard(&cwd.join("cut")), expected);
}

#[test]
fn two_shards_or_two_workers_give_the_leaderboard_of_one_process() {
    // Trials alone: fused populations follow the number of shards (each gets a share), and
    // a population rounds apart from its members trained alone.
    let config = tune_config(3).replace("eta = 2\n", "eta = 2\nfuse = false\n");
    let (dir, _) = workspace_with(&config);
    let cwd = dir.path();
    ok(kd_cli(&["tune", "run.toml", "--out", "one"], cwd), "tune");
    let expected = leaderboard(&cwd.join("one"));

    let shard = |i: &str| {
        Command::new(env!("CARGO_BIN_EXE_kd-cli"))
            .args(["tune", "run.toml", "--out", "shared", "--shard", i])
            .current_dir(cwd)
            .env("RUST_LOG", "warn")
            .output()
    };
    let second = std::thread::scope(|s| {
        let second = s.spawn(|| shard("2/2").unwrap());
        ok(shard("1/2").unwrap(), "shard 1/2");
        second.join().unwrap()
    });
    ok(second, "shard 2/2");
    let report = ok(kd_cli(&["tune", "--report", "shared"], cwd), "--report");
    assert_eq!(leaderboard(&cwd.join("shared")), expected);
    assert_eq!(String::from_utf8_lossy(&report.stdout), expected.0);

    let workers = config.replace("eta = 2\n", "eta = 2\nworkers = 2\n");
    std::fs::write(cwd.join("workers.toml"), workers).unwrap();
    ok(
        kd_cli(&["tune", "workers.toml", "--out", "workers"], cwd),
        "workers",
    );
    assert_eq!(leaderboard(&cwd.join("workers")), expected);
}

#[test]
fn selection_never_reads_the_test_set() {
    let (dir, _) = workspace_with(&tune_config(3));
    let cwd = dir.path();
    ok(
        kd_cli(&["tune", "run.toml", "--out", "true-labels"], cwd),
        "tune",
    );
    // Every test label moved one image on: no test image keeps its class.
    let labels = cwd.join("data/t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8..].rotate_left(1);
    std::fs::write(&labels, bytes).unwrap();
    ok(
        kd_cli(&["tune", "run.toml", "--out", "shuffled"], cwd),
        "tune",
    );

    let (a, b) = (
        leaderboard(&cwd.join("true-labels")).1,
        leaderboard(&cwd.join("shuffled")).1,
    );
    let selection = |j: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        let rows = j["rows"].as_array().unwrap();
        rows.iter()
            .map(|r| (r["trial"].clone(), r["rungs"].clone()))
            .collect()
    };
    assert_eq!(
        selection(&a),
        selection(&b),
        "the same ranking on validation"
    );
    assert_ne!(a["scratch"], b["scratch"], "the test set did change");
}

#[test]
fn a_failing_configuration_is_reported_and_the_tune_goes_on() {
    let config = tune_config(3).replace(
        "\"distill.temperature\" = [2.0, 4.0]",
        "\"student.train.lr\" = [0.01, 1e30]",
    );
    // 1e30: Adam's first step puts weights past what float32 logits hold, whatever the
    // rounding (1e12 may stay just finite in one order of summation and not in another).
    assert!(config.contains("1e30"));
    let (dir, _) = workspace_with(&config);
    let out = ok(
        kd_cli(&["tune", "run.toml", "--out", "t"], dir.path()),
        "tune",
    );
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    let board = read_json(&dir.path().join("t/tune.json"));
    let rows = board["rows"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| !r["label"].as_str().unwrap().contains("lr=0.01"))
        .collect();
    assert_eq!(failed.len(), 2);
    for row in failed {
        assert_eq!(row["rungs"][0]["mean"], serde_json::Value::Null, "{row}");
        assert!(!row["rungs"][0]["failed"].as_array().unwrap().is_empty());
    }
    assert!(md.contains("Failed:\n- #1 seed 1: "), "{md}");
    assert!(
        md.contains("non-finite loss") || md.contains("diverged"),
        "{md}"
    );
    assert!(
        board["winner_vs_runner_up"]["text"].is_string(),
        "the two others finished"
    );
}

#[test]
fn bad_tunes_are_one_line_errors_before_anything_is_written() {
    let (dir, _) = workspace_with(&tune_config(3));
    let cwd = dir.path();
    let space = |grid: &str| tune_config(3).replace(SPACE, &format!("[tune.space]\n{grid}\n"));
    let cases: [(String, &[&str], &str); 8] = [
        (
            space("\"student.nonsense\" = [1]"),
            &[],
            "student.nonsense=1 is not a valid config",
        ),
        (
            space("\"distill.temperature\" = [\"hot\"]"),
            &[],
            "distill.temperature",
        ),
        (
            space("\"distill.temperature\" = []"),
            &[],
            "expected a list of at least one value",
        ),
        (
            space("\"data.validation_holdout\" = [10, 20]"),
            &[],
            "the trials of a seed share `data`",
        ),
        (
            tune_config(3).replace("eta = 2", "eta = 2\nmax_trials = 3"),
            &[],
            "more than tune.max_trials = 3 (raise it, or pass --yes",
        ),
        (
            tune_config(3).replace("rungs = [1, 3]", "rungs = [3, 1]"),
            &[],
            "tune.rungs: expected increasing",
        ),
        (
            tune_config(3),
            &["--shard", "3/2"],
            "expected a shard between 1 and 2",
        ),
        (
            tune_config(3).replace("width = 4", "width = 0"),
            &[],
            "student.model",
        ),
    ];
    for (text, extra, expected) in cases {
        std::fs::write(cwd.join("bad.toml"), &text).unwrap();
        let mut args = vec!["tune", "bad.toml", "--out", "bad"];
        args.extend_from_slice(extra);
        let out = kd_cli(&args, cwd);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{expected}: succeeded");
        assert!(err.contains(expected), "{expected}\n-> {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!cwd.join("bad").exists(), "{expected}: nothing written");
    }
    // `run` on a tune file, and `--report` of another tune's folder.
    let run = kd_cli(&["run", "run.toml"], cwd);
    assert!(String::from_utf8_lossy(&run.stderr).contains("kd-cli tune run.toml"));
    ok(kd_cli(&["tune", "run.toml", "--out", "mine"], cwd), "tune");
    std::fs::write(cwd.join("other.toml"), tune_config(4)).unwrap();
    for args in [
        &["tune", "other.toml", "--report", "mine"][..],
        &["tune", "other.toml", "--out", "mine", "--resume"],
    ] {
        let out = kd_cli(args, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("holds another tune"),
            "{err}"
        );
    }
}

#[test]
fn fused_populations_and_solo_trials_rank_alike() {
    let (dir, _) = workspace_with(&tune_config(3));
    let cwd = dir.path();
    // Populations from 2 members (the default, 4, would leave the finalists alone).
    let fused = tune_config(3).replace("eta = 2\n", "eta = 2\nfuse_min = 2\n");
    std::fs::write(cwd.join("fused.toml"), fused).unwrap();
    let fused = Command::new(env!("CARGO_BIN_EXE_kd-cli"))
        .args(["tune", "fused.toml", "--out", "fused"])
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&ok(fused, "fused tune").stderr).to_string();
    // Rung 0 fuses each seed's 4 trials, rung 1 its 2 finalists.
    assert_eq!(
        log.matches("4 trials as one fused population").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("2 trials as one fused population").count(),
        2,
        "{log}"
    );
    let solo = tune_config(3).replace("eta = 2\n", "eta = 2\nfuse = false\n");
    std::fs::write(cwd.join("solo.toml"), solo).unwrap();
    ok(
        kd_cli(&["tune", "solo.toml", "--out", "solo"], cwd),
        "solo tune",
    );
    let (a, b) = (
        leaderboard(&cwd.join("fused")).1,
        leaderboard(&cwd.join("solo")).1,
    );
    let rows = |j: &serde_json::Value| j["rows"].as_array().unwrap().clone();
    assert_eq!(rows(&a).len(), rows(&b).len());
    // Each configuration's validation accuracy (%) at each rung both reached, fused and
    // alone: grouped and plain convolutions may round apart, which may move a prediction,
    // not more than two of the 40 validation images (5 points).
    let cells = |j: &serde_json::Value| -> std::collections::BTreeMap<u64, Vec<f64>> {
        let cell = |c: &serde_json::Value| c["mean"].as_f64().unwrap();
        rows(j)
            .iter()
            .map(|r| {
                (
                    r["trial"].as_u64().unwrap(),
                    r["rungs"].as_array().unwrap().iter().map(cell).collect(),
                )
            })
            .collect()
    };
    let (ca, cb) = (cells(&a), cells(&b));
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (trial, x) in &ca {
        for (p, q) in x.iter().zip(&cb[trial]) {
            assert!(
                (p - q).abs() <= 5.0 + 1e-9,
                "trial {trial}: {x:?} vs {:?}",
                cb[trial]
            );
        }
    }
}

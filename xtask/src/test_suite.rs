//! `cargo xtask test`: the whole workspace's tests with one summary line at the end.
//!
//! Runs `cargo test --workspace --no-fail-fast` (so a failing test binary does not hide the
//! ones after it), reads libtest's `test result:` lines for the counts, and counts the tests
//! that skipped for a missing asset through the file `KD_SKIP_LOG` names (see `kd-testkit`).
//! `--numeric` runs only the tests that compare numbers with PyTorch or with each other
//! (losses, model forwards, export, cached vs live teacher, data parallel): CI runs them a
//! second time under other libtorch code paths (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA`).
//! `--precision-guard` runs the tests whose runs use `precision = "auto"` under the
//! precisions `auto` does not pick on this CPU ([`crate::precision_guard`]).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{cargo, root};

/// The numeric tests, as `cargo test` arguments (each crate's test binary, filtered to the
/// modules, or tests, that compare numbers): losses vs PyTorch, model forwards vs
/// PyTorch, export equality, cached vs live teacher, data-parallel equivalence. Always with
/// `--workspace`, so that the build of the whole suite is reused, not redone per package.
pub const NUMERIC: &[&[&str]] = &[
    &[
        "--workspace",
        "--no-fail-fast",
        "--test",
        "kd_core",
        "--test",
        "kd_models",
        "--test",
        "kd_train",
        "--test",
        "kd_onnx",
        "--",
        "loss_zoo::",
        "unlabeled_rows::",
        "keras_kd::",
        "relation_losses::",
        "feature_losses::",
        "simkd::",
        "contrastive::",
        "distiller::",
        "vgg::",
        "architectures::",
        "class_map::",
        "ensemble::",
        "trainer::",
        "resume_methods::",
        "script_student::",
        "export::",
        "teacher::",
    ],
    &[
        "--workspace",
        "--no-fail-fast",
        "--test",
        "kd_cli",
        "--",
        "cli::exported",
        "distributed::two_ranks",
        "bridged_teacher::",
    ],
];

/// Test counts over every test binary of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    /// Test binaries that reported a result (a build failure leaves none).
    pub binaries: usize,
}

impl Counts {
    /// Adds a libtest summary line (`test result: ok. 12 passed; 0 failed; 1 ignored; ...`).
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.binaries += 1;
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let n = |i: usize| words.get(i).and_then(|w| w.parse::<usize>().ok());
            // "ok. 12 passed" / "FAILED. 3 passed" or " 0 failed".
            let (count, what) = match words.as_slice() {
                [_, _, what] => (n(1), *what),
                [_, what] => (n(0), *what),
                _ => continue,
            };
            let Some(count) = count else { continue };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Which tests a run of the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Every test of the workspace, and the library example.
    Whole,
    /// [`NUMERIC`].
    Numeric,
    /// [`crate::precision_guard::PRECISION_SENSITIVE`] once per [`crate::precision_guard::passes`].
    PrecisionGuard,
}

/// One `cargo test` invocation: what it is (empty for the plain suites), its arguments and
/// the environment variables set for it.
type Invocation = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
);

/// The `cargo test` invocations of `suite` on this machine.
fn invocations(suite: Suite) -> Vec<Invocation> {
    match suite {
        Suite::Whole => vec![("", vec!["--workspace", "--no-fail-fast"], vec![])],
        Suite::Numeric => NUMERIC.iter().map(|a| ("", a.to_vec(), vec![])).collect(),
        Suite::PrecisionGuard => {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let (passes, note) = crate::precision_guard::passes(&cpuinfo);
            if let Some(note) = note {
                eprintln!("xtask: precision guard: {note}");
            }
            let tests = crate::precision_guard::PRECISION_SENSITIVE;
            passes
                .into_iter()
                .map(|pass| (pass.label, tests.to_vec(), pass.env))
                .collect()
        }
    }
}

/// Runs `cargo test ARGS` with `KD_SKIP_LOG` and `env` set, echoing its output, and adds its
/// counts.
fn cargo_test(
    (args, env): (&[&str], &[(&str, &str)]),
    skip_log: &Path,
    counts: &mut Counts,
) -> Result<bool> {
    let mut cmd = cargo();
    cmd.arg("test")
        .args(args)
        .envs(env.iter().copied())
        .env(kd_testkit::SKIP_LOG_VAR, skip_log)
        .current_dir(root())
        .stdout(Stdio::piped());
    eprintln!("xtask: $ {cmd:?}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read cargo test's output")?;
        println!("{line}");
        counts.add_line(&line);
    }
    Ok(child.wait()?.success())
}

/// The lines of the skip log (one per skipped test).
fn skipped(skip_log: &Path) -> Vec<String> {
    std::fs::read_to_string(skip_log)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The summary line's text: the counts (`skips` of the passed tests skipped for a missing
/// asset), the time, the CPU code-path settings and the precision guard's passes.
fn summary(counts: &Counts, skips: usize, started: Instant, passes: &[&str]) -> String {
    let settings: Vec<String> = [
        "ATEN_CPU_CAPABILITY",
        "ONEDNN_MAX_CPU_ISA",
        "KD_AUTO_PRECISION",
        "CI",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok().map(|x| format!("{v}={x}")))
    .collect();
    let mut notes = vec![settings.join(" ")];
    if !passes.is_empty() {
        notes.push(format!("precision guard: {}", passes.join("; ")));
    }
    notes.retain(|n| !n.is_empty());
    format!(
        "{} passed, {} failed, {} skipped, {} ignored ({} test binaries, {:.0} s{}{})",
        counts.passed.saturating_sub(skips),
        counts.failed,
        skips,
        counts.ignored,
        counts.binaries,
        started.elapsed().as_secs_f64(),
        if notes.is_empty() { "" } else { "; " },
        notes.join("; "),
    )
}

/// Runs `suite` plus `extra` cargo test arguments, prints the summary line, and fails if
/// anything failed.
pub fn run(suite: Suite, extra: &[String]) -> Result<()> {
    let started = Instant::now();
    let skip_log = root().join("target").join("kd-test-skips.log");
    std::fs::create_dir_all(skip_log.parent().unwrap())?;
    std::fs::write(&skip_log, "").context("cannot reset the skip log")?;
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut counts = Counts::default();
    let mut ok = true;
    let mut passes = Vec::new();
    for (label, args, env) in invocations(suite) {
        if !label.is_empty() {
            eprintln!("xtask: precision guard pass: {label}");
            passes.push(label);
        }
        // The caller's cargo arguments go before libtest's (after a `--`).
        let mut args = args;
        let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        args.splice(at..at, extra.iter().copied());
        let failed_before = counts.failed;
        if !cargo_test((&args, &env), &skip_log, &mut counts)? {
            ok = false;
            if counts.failed == failed_before {
                // A build error, or a test binary that died (a signal, out of memory) before
                // printing its result line: still a failure in the summary.
                eprintln!("xtask: cargo test failed without a failing test's result line (a build error, or a test binary that crashed: see above)");
                counts.failed += 1;
            }
        }
    }
    if suite == Suite::Whole && extra.is_empty() {
        // The library example must keep running, not only compiling.
        let example = cargo()
            .args(["run", "--quiet", "--package", "kd-train", "--example"])
            .arg("distill_own_model")
            .current_dir(root())
            .status()
            .context("cannot run the distill_own_model example")?;
        if example.success() {
            counts.passed += 1;
        } else {
            counts.failed += 1;
            ok = false;
        }
    }
    if suite == Suite::PrecisionGuard && passes.is_empty() {
        eprintln!("xtask: precision guard: nothing to run on this CPU (see the note above); the suite ran in its one precision, f32");
        return Ok(());
    }
    let skips = skipped(&skip_log);
    for line in &skips {
        eprintln!("xtask: {line}");
    }
    eprintln!(
        "xtask: test summary: {}",
        summary(&counts, skips.len(), started, &passes)
    );
    if !ok || counts.failed > 0 {
        bail!("the test suite failed (see the failures above)");
    }
    if counts.binaries == 0 {
        bail!("no test binary reported a result");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_result_lines_are_summed() {
        let mut c = Counts::default();
        for line in [
            "running 3 tests",
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.52s",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 5 filtered out; finished in 1.00s",
            "test a ... ok",
        ] {
            c.add_line(line);
        }
        assert_eq!(
            c,
            Counts {
                passed: 15,
                failed: 2,
                ignored: 1,
                binaries: 2
            }
        );
    }
}

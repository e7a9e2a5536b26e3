//! `kd-cli run CONFIG --resume DIR`: continuing a run directory. A run may only be resumed
//! with the configuration it was started with (after overrides): every training phase's
//! checkpoint carries a fingerprint of that configuration, and the directory's
//! `config.toml` is compared key by key before anything is written.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::RunConfig;
use crate::resolved::canonical_toml;

/// A stable fingerprint of a resolved config (64-bit FNV-1a of its TOML, in hex).
pub fn fingerprint(resolved_toml: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in resolved_toml.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Checks that the run directory `dir` was started with the config `now` resolves to: its
/// `config.toml` (as any version of kd wrote it) is read as a config and both are compared
/// in their canonical form ([`crate::resolved`]); the error names the keys that differ.
pub fn check_same_config(dir: &Path, now: &RunConfig) -> Result<()> {
    let path = dir.join("config.toml");
    let saved = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--resume {}: not a run directory (cannot read {})",
            dir.display(),
            path.display()
        )
    })?;
    let saved = RunConfig::parse(&saved, &path)
        .with_context(|| format!("{}: not a config written by kd-cli run", path.display()))?;
    let saved: toml::Value = toml::from_str(&canonical_toml(&saved)?).context("saved config")?;
    let now: toml::Value = toml::from_str(&canonical_toml(now)?).context("resolved config")?;
    let mut differences = Vec::new();
    diff("", &saved, &now, &mut differences);
    if !differences.is_empty() {
        let shown: Vec<String> = differences.iter().take(5).cloned().collect();
        bail!(
            "--resume {}: the run was started with a different config ({}{}); resume with the config and overrides it was started with, or start a new run with another --out",
            dir.display(),
            shown.join("; "),
            if differences.len() > 5 {
                format!("; and {} more", differences.len() - 5)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Appends `key: <run> in the run, <now> now` for every leaf that differs.
fn diff(prefix: &str, run: &toml::Value, now: &toml::Value, out: &mut Vec<String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (run, now) {
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&key(k), x, y, out),
                    (Some(x), None) => out.push(format!("{}: {x} in the run, unset now", key(k))),
                    (None, Some(y)) => out.push(format!("{}: unset in the run, {y} now", key(k))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!("{prefix}: {a} in the run, {b} now")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_differ_by_content() {
        // FNV-1a 64 of the empty string is its offset basis.
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("seed = 1\n"), fingerprint("seed = 1\n"));
        assert_ne!(fingerprint("seed = 1\n"), fingerprint("seed = 2\n"));
    }

    #[test]
    fn differing_keys_are_named_with_both_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "seed = 1\n[student.train]\nlr = 0.01\n",
        )
        .unwrap();
        let config = |text: &str| RunConfig::parse(text, Path::new("now.toml")).unwrap();
        let same = config("seed = 1\n[student.train]\nlr = 0.01\n");
        assert!(check_same_config(dir.path(), &same).is_ok());
        let other = config("seed = 1\n[student.train]\nlr = 0.02\n");
        let err = check_same_config(dir.path(), &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("student.train.lr: 0.01 in the run, 0.02 now"),
            "{err}"
        );
        let missing = tempfile::tempdir().unwrap();
        let err = check_same_config(missing.path(), &same).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a run directory"),
            "{err:#}"
        );
    }
}

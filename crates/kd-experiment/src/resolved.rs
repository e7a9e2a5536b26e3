//! The resolved config of a run in its two forms:
//!
//! - the canonical text ([`canonical_toml`]): every key, with the sections the run does not
//!   read put back to their defaults — what the checkpoints' fingerprint hashes and what a
//!   resume compares, so that a leftover `[teacher.model]` beside a TorchScript teacher
//!   changes nothing;
//! - the written text ([`written_toml`], the run directory's `config.toml`): the canonical
//!   config without those unused sections (`[teacher.model]` and `[teacher.train]` for a
//!   TorchScript teacher, `[teacher.input]` for any other, `[data.image_folder]` for a
//!   dataset that is not an image folder), and with `distill.teacher_views` and
//!   `distill.mixup` written out even at their defaults. Read back with
//!   [`RunConfig::parse`], it gives the canonical config again.

use anyhow::Result;
use kd_data::DatasetKind;

use crate::config::RunConfig;

/// `cfg` with the sections its run does not read at their defaults.
pub fn canonical(cfg: &RunConfig) -> RunConfig {
    let defaults = RunConfig::default();
    let mut c = cfg.clone();
    if !c.teacher.uses_model() {
        c.teacher.model = defaults.teacher.model;
        c.teacher.train = defaults.teacher.train;
    }
    if !c.teacher.is_outside() {
        c.teacher.input = defaults.teacher.input;
    }
    if c.data.dataset != DatasetKind::ImageFolder {
        c.data.image_folder = defaults.data.image_folder;
    }
    c
}

/// The canonical text of `cfg`: what checkpoints fingerprint and a resume compares.
pub fn canonical_toml(cfg: &RunConfig) -> Result<String> {
    canonical(cfg).to_toml()
}

/// The run directory's `config.toml` for `cfg` (see the module docs).
///
/// ```
/// use std::path::Path;
/// use kd_experiment::config::RunConfig;
/// use kd_experiment::resolved::{canonical, written_toml};
///
/// let cfg = RunConfig::default();
/// let written = written_toml(&cfg)?;
/// // Written out at its default, and no section the run does not read.
/// assert!(written.contains("teacher_views = \"auto\""));
/// assert!(!written.contains("[teacher.input]"));
/// let back = RunConfig::parse(&written, Path::new("config.toml"))?;
/// assert_eq!(canonical(&back).distill, cfg.distill);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn written_toml(cfg: &RunConfig) -> Result<String> {
    let mut unused = vec!["data.image_folder"];
    if cfg.data.dataset == DatasetKind::ImageFolder {
        unused.clear();
    }
    if !cfg.teacher.uses_model() {
        unused.extend(["teacher.model", "teacher.train"]);
    }
    if !cfg.teacher.is_outside() {
        unused.push("teacher.input");
    }
    let views = format!("teacher_views = \"{}\"", cfg.distill.teacher_views.name());
    let mixup = toml::Value::Float(cfg.distill.mixup);
    let distill_keys = [views, format!("mixup = {mixup}")];
    // The canonical text, section by section in the config's own order: each header line
    // `[a.b]` starts a section that runs to the next header.
    let mut out: Vec<String> = Vec::new();
    let (mut skipping, mut in_distill) = (false, false);
    for line in canonical_toml(cfg)?.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if in_distill {
                add_missing(&mut out, &distill_keys);
            }
            skipping = unused
                .iter()
                .any(|u| name == *u || name.starts_with(&format!("{u}.")));
            in_distill = name == "distill";
        }
        if !skipping {
            out.push(line.to_string());
        }
    }
    if in_distill {
        add_missing(&mut out, &distill_keys);
    }
    Ok(out.join("\n") + "\n")
}

/// Adds each of `keys` (`name = value` lines) the section at the end of `out` lacks, before
/// the blank lines that close it.
fn add_missing(out: &mut Vec<String>, keys: &[String]) {
    let blank = out.iter().rev().take_while(|l| l.trim().is_empty()).count();
    let at = out.len() - blank;
    let section_start = out[..at]
        .iter()
        .rposition(|l| l.starts_with('['))
        .unwrap_or(0);
    for key in keys.iter().rev() {
        let name = key.split(" = ").next().unwrap_or_default();
        let present = out[section_start..at]
            .iter()
            .any(|l| l.split(" = ").next() == Some(name));
        if !present {
            out.insert(at, key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> RunConfig {
        RunConfig::parse(text, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn a_config_with_no_unused_keys_keeps_its_text_and_fingerprint() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml"),
        )
        .unwrap();
        let cfg = parse(&text);
        assert_eq!(canonical(&cfg), cfg);
        assert_eq!(canonical_toml(&cfg).unwrap(), cfg.to_toml().unwrap());
        let written = written_toml(&cfg).unwrap();
        assert!(!written.contains("[teacher.input]") && !written.contains("[data.image_folder]"));
        assert!(written.contains("teacher_views = \"auto\"") && written.contains("mixup = 0.0"));
        assert_eq!(canonical(&parse(&written)), cfg);
    }

    #[test]
    fn a_torchscript_teacher_run_writes_no_unused_teacher_sections_and_reads_back_the_same() {
        let cfg = parse(
            "[teacher]\ntorchscript = \"teacher.pt\"\n[teacher.input]\nimage_size = 32\n\
             [teacher.model]\nkind = \"cnn\"\nhidden = 17\n[teacher.train]\nepochs = 99\n\
             [distill]\nloss = \"hinton\"\nmixup = 0.2\n",
        );
        let written = written_toml(&cfg).unwrap();
        for unused in [
            "[teacher.model]",
            "[teacher.train]",
            "hidden = 17",
            "epochs = 99",
        ] {
            assert!(!written.contains(unused), "{unused} in\n{written}");
        }
        assert!(written.contains("[teacher.input]") && written.contains("image_size = 32"));
        assert!(written.contains("mixup = 0.2"));
        let back = parse(&written);
        assert_eq!(canonical(&back), canonical(&cfg));
        // The leftover sections change neither the canonical text nor the fingerprint.
        let clean = parse(
            "[teacher]\ntorchscript = \"teacher.pt\"\n[teacher.input]\nimage_size = 32\n\
             [distill]\nloss = \"hinton\"\nmixup = 0.2\n",
        );
        assert_eq!(
            canonical_toml(&clean).unwrap(),
            canonical_toml(&cfg).unwrap()
        );
    }
}

//! The `[tune]` section of a run config, for successive halving (Jamieson & Talwalkar 2016;
//! Li et al. 2018, ASHA): the search space — lists of values for config keys the students
//! may vary — the seeds, the rungs (epochs a trial has trained at the end of each rung), the
//! reduction factor η (the top 1/η of a rung go on), and how many trials train at once. The
//! rest of the file is the base config every trial starts from.
//!
//! Everything is checked before anything trains, each error naming its key: a key no config
//! has, a value of the wrong type (every trial's config is parsed), an empty list, a key that
//! would change what the trials of a seed share (the teacher, the data, the seed, the
//! device), rungs that do not increase, η below 2, and a space of more trials than
//! `max_trials`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_models::population::Layout;
use serde::{Deserialize, Serialize};

use crate::config::{Override, RunConfig};

/// The `[tune]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneSection {
    /// The base config's file, relative to the tune file (instead of the tune file's own
    /// keys): a tune of an existing config without copying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PathBuf>,
    /// Each varied key (dotted, e.g. `distill.temperature`) and its candidate values — or a
    /// list of such grids, whose configurations follow one another (a grid per loss, each
    /// over its own parameters).
    pub space: Space,
    /// The seeds every configuration runs with (its teacher and scratch student per seed).
    pub seeds: Vec<u64>,
    /// Epochs trained by the end of each rung, increasing (e.g. `[5, 15, 40]`).
    pub rungs: Vec<usize>,
    /// The reduction factor: the top `1/eta` of a rung's configurations go on.
    #[serde(default = "default_eta")]
    pub eta: usize,
    /// Trials that train at once on this machine.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// The most configurations the space may make.
    #[serde(default = "default_max_trials")]
    pub max_trials: usize,
    /// Trains a rung's trials of one seed that share a student architecture and its batches
    /// as fused populations ([`kd_train::fit_population`]); `false`: each alone.
    #[serde(default = "default_fuse")]
    pub fuse: bool,
    /// The most members of one fused population (a rung's larger groups are split).
    #[serde(default = "default_fuse_members")]
    pub fuse_members: usize,
    /// The fewest: smaller groups train alone (on a 2-core CPU two or three fused students
    /// were measured slower than solo fits).
    #[serde(default = "default_fuse_min")]
    pub fuse_min: usize,
    /// How a population's members compute: `"grouped"` (fused convolutions; the speed) or
    /// `"members"` (each member its solo fit's operations: trials equal their solo fits
    /// bit for bit on one machine, at about the speed of training them alone). Left out of
    /// the tune's identity when `"grouped"`, so tunes from before the key keep theirs.
    #[serde(default, skip_serializing_if = "is_grouped")]
    pub fuse_layout: Layout,
    /// The configuration (its `#`, from 0 in the space's order) every other finalist is
    /// also compared with on the test set, seed by seed (e.g. Hinton KD among the methods);
    /// it only reports, so it is not part of the tune's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<usize>,
}

/// One grid of keys and values.
pub type Grid = BTreeMap<String, Vec<toml::Value>>;

/// A search space: one grid, or several one after another (as scikit-learn's
/// `ParameterGrid` takes a list of dicts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Space {
    /// The product of one grid's lists.
    Grid(Grid),
    /// Each grid's product, in turn.
    Grids(Vec<Grid>),
}

impl Space {
    /// The grids, in order.
    pub fn grids(&self) -> &[Grid] {
        match self {
            Self::Grid(grid) => std::slice::from_ref(grid),
            Self::Grids(grids) => grids,
        }
    }
}

fn default_eta() -> usize {
    3
}

fn default_workers() -> usize {
    1
}

fn default_max_trials() -> usize {
    100
}

fn default_fuse() -> bool {
    true
}

fn default_fuse_members() -> usize {
    12
}

fn default_fuse_min() -> usize {
    4
}

fn is_grouped(layout: &Layout) -> bool {
    *layout == Layout::Grouped
}

/// Config keys (and their sub-keys) the trials of one seed share, so the space may not vary
/// them: the teacher and its logits, the data and its split, the seed, the device and the
/// arithmetic.
const SHARED: [&str; 8] = [
    "teacher",
    "data",
    "seed",
    "name",
    "device",
    "threads",
    "precision",
    "channels_last",
];

/// One configuration of the space: its overrides on the base config, in the order they
/// apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its place in the space's order, from 0.
    pub index: usize,
    /// `key = value` overrides, a section's `loss` or `kind` first (it resets its section).
    pub sets: Vec<Override>,
}

impl Trial {
    /// The overrides as `key=value` words, e.g. `distill.loss="dkd" distill.temperature=4.0`.
    pub fn label(&self) -> String {
        let words: Vec<String> = self.sets.iter().map(ToString::to_string).collect();
        words.join(" ")
    }
}

/// A tune: the base config and its `[tune]` section, checked.
#[derive(Debug, Clone)]
pub struct Tune {
    /// The tune file (named in errors; the trials' plans are of it).
    pub path: PathBuf,
    /// The config every trial starts from (the file without `[tune]`).
    pub base: RunConfig,
    /// The base config's text, which each trial's overrides apply to.
    base_text: String,
    /// The `[tune]` section.
    pub section: TuneSection,
    /// Every configuration of the space, each checked to parse.
    pub trials: Vec<Trial>,
}

impl Tune {
    /// Reads the tune file `text` (named `path` in errors) and checks it whole.
    ///
    /// ```
    /// use std::path::Path;
    /// use kd_experiment::tune::space::Tune;
    ///
    /// let text = r#"
    /// [distill]
    /// loss = "hinton"
    /// [tune]
    /// seeds = [1, 2, 3]
    /// rungs = [5, 15, 40]
    /// space = { "distill.temperature" = [1.0, 4.0], "distill.alpha" = [0.1, 0.5, 0.9] }
    /// "#;
    /// let tune = Tune::parse(text, Path::new("tune.toml"))?;
    /// assert_eq!(tune.trials.len(), 6);
    /// assert_eq!(tune.trials[0].label(), "distill.alpha=0.1 distill.temperature=1.0");
    ///
    /// let bad = text.replace("distill.alpha", "teacher.train.lr");
    /// let err = Tune::parse(&bad, Path::new("tune.toml")).unwrap_err().to_string();
    /// assert!(err.contains("tune.space.\"teacher.train.lr\""), "{err}");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        Self::parse_allowing(text, path, false)
    }

    /// [`Tune::parse`]; `more_than_max` lets the space make more configurations than
    /// `tune.max_trials` (`kd-cli tune --yes`).
    pub fn parse_allowing(text: &str, path: &Path, more_than_max: bool) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).with_context(|| format!("{}: not a TOML file", path.display()))?;
        let section = table
            .remove("tune")
            .with_context(|| format!("{}: no [tune] section", path.display()))?;
        let section: TuneSection = section
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: [tune]: {e}", path.display()))?;
        let base_text = base_text(&section, table, path)?;
        let base = RunConfig::parse(&base_text, path)?;
        check_section(&section, path, more_than_max)?;
        let trials = trials(&section);
        if let Some(b) = section.baseline.filter(|b| *b >= trials.len()) {
            bail!(
                "{}: tune.baseline: expected a configuration of the space (0 to {}), got {b}",
                path.display(),
                trials.len() - 1
            );
        }
        for trial in &trials {
            RunConfig::parse_with(&base_text, path, &trial.sets).with_context(|| {
                format!(
                    "{}: tune.space: the configuration {} is not a valid config",
                    path.display(),
                    trial.label()
                )
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            base,
            base_text,
            section,
            trials,
        })
    }

    /// The tune as one self-contained file: the base config, then `[tune]` (without
    /// `base`): what a tune's folder keeps.
    pub fn stored_text(&self) -> Result<String> {
        let mut section = self.section.clone();
        section.base = None;
        let mut table = toml::Table::new();
        table.insert("tune".into(), toml::Value::try_from(&section)?);
        Ok(format!("{}\n{}", self.base_text, toml::to_string(&table)?))
    }

    /// Reads and checks the tune file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::parse(&read(path)?, path)
    }

    /// The config of `trial` (`None`: the base config, the scratch student's) at `seed`:
    /// every student trains for the last rung's epochs, so its schedule is the same
    /// however many rungs it survives.
    pub fn config(&self, trial: Option<&Trial>, seed: u64) -> Result<RunConfig> {
        let sets = trial.map_or(&[][..], |t| &t.sets);
        let mut cfg = RunConfig::parse_with(&self.base_text, &self.path, sets)?;
        cfg.seed = seed;
        cfg.student.train.epochs = self.final_epochs();
        Ok(cfg)
    }

    /// The epochs of the last rung: every student's whole schedule.
    pub fn final_epochs(&self) -> usize {
        self.section.rungs.last().copied().unwrap_or(0)
    }

    /// What identifies the tune — its base config, space, seeds, rungs, η and fusion (which
    /// decides the populations shards divide), not how many workers run it — so that a
    /// folder is only ever continued or reported by its own tune.
    pub fn fingerprint(&self) -> Result<String> {
        let mut section = self.section.clone();
        (section.workers, section.base, section.baseline) = (1, None, None);
        let text = format!(
            "{}\n{}",
            crate::resolved::canonical_toml(&self.base)?,
            toml::to_string(&section)?
        );
        Ok(crate::resume::fingerprint(&text))
    }
}

/// The base config's text: the file `tune.base` names (relative to the tune file), or the
/// tune file's own keys (`table`, without `[tune]`).
fn base_text(section: &TuneSection, table: toml::Table, path: &Path) -> Result<String> {
    let Some(base) = &section.base else {
        return toml::to_string(&table).context("the base config");
    };
    if let Some(key) = table.keys().next() {
        bail!(
            "{}: `{key}` beside tune.base: the base config's keys belong in {} (or, varied, in tune.space)",
            path.display(),
            base.display()
        );
    }
    let file = path.parent().unwrap_or(Path::new("")).join(base);
    std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{}: tune.base: cannot read {}",
            path.display(),
            file.display()
        )
    })
}

/// The text of the tune file at `path`.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the tune file", path.display()))
}

/// The checks of a section on its own (the trials' configs are checked by parsing them).
fn check_section(t: &TuneSection, path: &Path, more_than_max: bool) -> Result<()> {
    let at = path.display();
    let grids = t.space.grids();
    if grids.is_empty() || grids.iter().any(BTreeMap::is_empty) {
        bail!("{at}: tune.space: expected at least one key with a list of values, got none");
    }
    for (key, values) in grids.iter().flatten() {
        let shared = SHARED
            .iter()
            .find(|s| key == *s || key.starts_with(&format!("{s}.")));
        if let Some(shared) = shared {
            bail!("{at}: tune.space.\"{key}\": the trials of a seed share `{shared}` (one teacher, one data split, one seed): vary student, distill or student training keys only");
        }
        if key == "student.train.epochs" {
            bail!("{at}: tune.space.\"{key}\": every student trains for the last of tune.rungs' epochs; vary the rungs instead");
        }
        if values.is_empty() {
            bail!("{at}: tune.space.\"{key}\": expected a list of at least one value, got []");
        }
    }
    if t.seeds.is_empty() {
        bail!("{at}: tune.seeds: expected at least one seed, got []");
    }
    let mut seeds = t.seeds.clone();
    seeds.sort_unstable();
    if seeds.windows(2).any(|w| w[0] == w[1]) {
        bail!(
            "{at}: tune.seeds: expected different seeds, got {:?}",
            t.seeds
        );
    }
    let increasing = t.rungs.windows(2).all(|w| w[0] < w[1]);
    if t.rungs.is_empty() || t.rungs[0] == 0 || !increasing {
        bail!(
            "{at}: tune.rungs: expected increasing epoch counts above 0 (e.g. [5, 15, 40]), got {:?}",
            t.rungs
        );
    }
    if t.eta < 2 {
        bail!(
            "{at}: tune.eta: expected 2 or more (the top 1/eta go on), got {}",
            t.eta
        );
    }
    if t.workers == 0 {
        bail!("{at}: tune.workers: expected 1 or more, got 0");
    }
    if t.fuse_members == 0 {
        bail!("{at}: tune.fuse_members: expected 1 or more, got 0");
    }
    if t.fuse_min < 2 {
        bail!(
            "{at}: tune.fuse_min: expected 2 or more, got {}",
            t.fuse_min
        );
    }
    let count: usize = grids
        .iter()
        .map(|g| g.values().map(Vec::len).product::<usize>())
        .sum();
    if count > t.max_trials && !more_than_max {
        bail!(
            "{at}: tune.space makes {count} configurations, more than tune.max_trials = {} (raise it, or pass --yes, to run them all)",
            t.max_trials
        );
    }
    Ok(())
}

/// Every configuration of the space, in order: each grid's in turn, a grid's the product
/// of its keys, the last key varying fastest; within a trial a `loss` or `kind` key comes
/// first.
fn trials(t: &TuneSection) -> Vec<Trial> {
    let mut trials = Vec::new();
    for grid in t.space.grids() {
        let mut keys: Vec<(&String, &Vec<toml::Value>)> = grid.iter().collect();
        keys.sort_by_key(|(k, _)| !(k.ends_with(".loss") || k.ends_with(".kind")));
        let count = keys.iter().map(|(_, v)| v.len()).product::<usize>();
        for n in 0..count {
            let mut rest = n;
            let mut sets: Vec<Override> = keys
                .iter()
                .rev()
                .map(|(key, values)| {
                    let value = values[rest % values.len()].clone();
                    rest /= values.len();
                    Override::new(key, value)
                })
                .collect();
            sets.reverse();
            let index = trials.len();
            trials.push(Trial { index, sets });
        }
    }
    trials
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[distill]\nloss = \"hinton\"\n";

    fn tune(section: &str) -> Result<Tune> {
        Tune::parse(&format!("{BASE}[tune]\n{section}"), Path::new("t.toml"))
    }

    fn error(section: &str) -> String {
        format!("{:#}", tune(section).unwrap_err())
    }

    #[test]
    fn the_space_makes_every_configuration_loss_first_and_each_parses_to_its_values() {
        let t = tune(
            "seeds = [1, 2]\nrungs = [2, 6]\n[tune.space]\n\
             \"distill.temperature\" = [1.0, 4.0]\n\
             \"distill.loss\" = [\"hinton\", \"dkd\"]\n\
             \"student.train.lr\" = [0.001, 0.003, 0.01]\n",
        )
        .unwrap();
        assert_eq!(t.trials.len(), 12);
        assert_eq!(
            t.trials[0].label(),
            "distill.loss=\"hinton\" distill.temperature=1.0 student.train.lr=0.001"
        );
        assert_eq!(
            t.trials[11].label(),
            "distill.loss=\"dkd\" distill.temperature=4.0 student.train.lr=0.01"
        );
        let labels: std::collections::BTreeSet<String> =
            t.trials.iter().map(Trial::label).collect();
        assert_eq!(labels.len(), 12, "every configuration once");
        let cfg = RunConfig::parse_with(BASE, Path::new("t.toml"), &t.trials[11].sets).unwrap();
        assert_eq!(cfg.student.train.lr, 0.01);
        assert!(
            matches!(cfg.distill.loss, kd_core::LossConfig::Dkd(ref d) if d.temperature == 4.0)
        );
        assert_eq!((t.section.eta, t.section.workers), (3, 1), "the defaults");
    }

    #[test]
    fn the_space_can_search_over_every_method_with_its_own_keys() {
        let grids: String = kd_core::loss::config::LOSS_NAMES
            .iter()
            .map(|name| {
                let layers = match *name {
                    "fitnets" | "at" | "rkd" => {
                        "\"distill.student_layer\" = [\"features.3\"]\n\"distill.teacher_layer\" = [\"features.5\"]\n"
                    }
                    _ => "",
                };
                format!("[[tune.space]]\n\"distill.loss\" = [\"{name}\"]\n{layers}")
            })
            .collect();
        let t = tune(&format!("seeds = [1]\nrungs = [2]\n{grids}")).unwrap();
        let losses: Vec<String> = t
            .trials
            .iter()
            .map(|trial| {
                let cfg = RunConfig::parse_with(BASE, Path::new("t.toml"), &trial.sets).unwrap();
                cfg.distill.loss.name().to_string()
            })
            .collect();
        assert_eq!(losses, kd_core::loss::config::LOSS_NAMES);
    }

    #[test]
    fn the_baseline_names_a_configuration_and_is_not_part_of_the_identity() {
        let section = "seeds = [1]\nrungs = [2]\nspace = { \"distill.alpha\" = [0.1, 0.5] }\n";
        let plain = tune(section).unwrap();
        let compared = tune(&format!("baseline = 1\n{section}")).unwrap();
        assert_eq!(compared.section.baseline, Some(1));
        assert_eq!(
            plain.fingerprint().unwrap(),
            compared.fingerprint().unwrap()
        );
        let err = error(&format!("baseline = 2\n{section}"));
        assert!(
            err.contains("tune.baseline: expected a configuration of the space (0 to 1), got 2"),
            "{err}"
        );
    }

    #[test]
    fn a_list_of_grids_makes_each_grid_in_turn() {
        let t = tune(
            "seeds = [1]\nrungs = [2]\n\
             [[tune.space]]\n\"distill.loss\" = [\"hinton\"]\n\"distill.alpha\" = [0.1, 0.5]\n\
             [[tune.space]]\n\"distill.loss\" = [\"dkd\"]\n\"distill.beta\" = [2.0, 8.0]\n\
             \"distill.temperature\" = [4.0]\n",
        )
        .unwrap();
        let labels: Vec<String> = t.trials.iter().map(Trial::label).collect();
        assert_eq!(
            labels,
            [
                "distill.loss=\"hinton\" distill.alpha=0.1",
                "distill.loss=\"hinton\" distill.alpha=0.5",
                "distill.loss=\"dkd\" distill.beta=2.0 distill.temperature=4.0",
                "distill.loss=\"dkd\" distill.beta=8.0 distill.temperature=4.0",
            ]
        );
        assert_eq!(t.trials[3].index, 3);
        // Hinton has no beta: a product over both grids would not parse.
        let err = error("seeds = [1]\nrungs = [2]\nspace = { \"distill.loss\" = [\"hinton\", \"dkd\"], \"distill.beta\" = [2.0] }\n");
        assert!(
            err.contains("distill.loss=\"hinton\" distill.beta=2.0 is not a valid config"),
            "{err}"
        );
        assert!(
            error("seeds = [1]\nrungs = [2]\nspace = []\n").contains("expected at least one key")
        );
    }

    #[test]
    fn the_fuse_layout_joins_the_identity_only_when_not_grouped() {
        let id = |extra: &str| {
            let section =
                format!("seeds = [1]\nrungs = [1]\n{extra}space = {{ \"distill.alpha\" = [0.5] }}");
            tune(&section).unwrap().fingerprint().unwrap()
        };
        assert_eq!(id(""), id("fuse_layout = \"grouped\"\n"));
        assert_ne!(id(""), id("fuse_layout = \"members\"\n"));
    }

    #[test]
    fn bad_sections_are_refused_naming_the_key() {
        let ok = "seeds = [1]\nrungs = [1, 3]\n";
        for (section, expected) in [
            (format!("{ok}space = {{ \"data.dataset\" = [\"mnist\"] }}"), "tune.space.\"data.dataset\": the trials of a seed share `data`"),
            (format!("{ok}space = {{ \"teacher.model.kind\" = [\"vgg\"] }}"), "share `teacher`"),
            (format!("{ok}space = {{ \"distill.temperature\" = [] }}"), "tune.space.\"distill.temperature\": expected a list"),
            (format!("{ok}space = {{ \"distill.temperature\" = [\"hot\"] }}"), "distill.temperature=\"hot\" is not a valid config"),
            (format!("{ok}space = {{ \"student.nonsense\" = [1] }}"), "student.nonsense=1 is not a valid config"),
            (format!("{ok}space = {{}}"), "tune.space: expected at least one key"),
            ("seeds = []\nrungs = [1]\nspace = { \"distill.alpha\" = [0.5] }".into(), "tune.seeds"),
            ("seeds = [1, 1]\nrungs = [1]\nspace = { \"distill.alpha\" = [0.5] }".into(), "expected different seeds"),
            ("seeds = [1]\nrungs = [5, 5]\nspace = { \"distill.alpha\" = [0.5] }".into(), "tune.rungs: expected increasing"),
            (format!("{ok}eta = 1\nspace = {{ \"distill.alpha\" = [0.5] }}"), "tune.eta"),
            (format!("{ok}max_trials = 3\nspace = {{ \"distill.alpha\" = [0.1, 0.5], \"distill.temperature\" = [1.0, 2.0] }}"), "makes 4 configurations, more than tune.max_trials = 3"),
            (format!("{ok}speed = 1\nspace = {{ \"distill.alpha\" = [0.5] }}"), "[tune]: unknown field `speed`"),
            (format!("{ok}fuse_layout = \"im2col\"\nspace = {{ \"distill.alpha\" = [0.5] }}"), "unknown variant `im2col`, expected `grouped` or `members`"),
        ] {
            let message = error(&section);
            assert!(message.contains(expected), "{section}\n-> {message}");
            assert!(message.contains("t.toml"), "{message}");
        }
        let no_tune = Tune::parse(BASE, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(no_tune.contains("no [tune] section"), "{no_tune}");
    }
}

//! One process's share of a tune ([`super::schedule`] says which): the teachers it owns,
//! then rung by rung its units — each the experiment's own student phase on the trial's
//! config at the seed ([`crate::run`]), reading the seed's one teacher and its cached
//! logits, pausing after the rung's epochs in its checkpoints and resuming from them at the
//! next. A unit whose result is in the folder is never redone; one cut short resumes from
//! its last epoch. A unit that fails is recorded as failed, with its reason.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use anyhow::Result;
use kd_data::ImageDataset;
use kd_models::Model;

use super::fusion::populations;
use super::progress::TuneProgress;
use super::schedule::{members, units, Shard};
use super::space::Tune;
use super::store::{Tested, TuneDir, Unit, UnitResult};
use crate::run::{fit_fused, fusion_key, Caches, Fitted, Plan, Student};

/// A seed's shared state in this process: its plan (the base config at the seed: its data
/// split), its teacher and the teacher's logits by set of student images.
struct SeedState {
    plan: Plan,
    /// `None` where a logits file teaches.
    teacher: Option<Model>,
    caches: Vec<(u64, Caches)>,
}

/// What a share of a tune runs with.
pub(crate) struct Runner<'a> {
    tune: &'a Tune,
    dir: &'a TuneDir,
    /// `--threads`, over the config's.
    threads: Option<usize>,
    seeds: HashMap<u64, SeedState>,
}

impl<'a> Runner<'a> {
    pub fn new(tune: &'a Tune, dir: &'a TuneDir, threads: Option<usize>) -> Self {
        Self {
            tune,
            dir,
            threads,
            seeds: HashMap::new(),
        }
    }

    /// The plan of the base config at `seed`, writing to the seed's directory.
    pub fn seed_plan(&self, seed: u64) -> Result<Plan> {
        let mut cfg = self.tune.config(None, seed)?;
        cfg.threads = self.threads.unwrap_or(cfg.threads);
        Plan::for_tune(&self.tune.path, cfg, self.dir.seed_dir(seed))
    }

    /// The plan of `unit` beside the seed's plan `seed_plan`.
    pub fn unit_plan(&self, seed_plan: &Plan, unit: Unit) -> Result<Plan> {
        let trial = match unit {
            Unit::Trial { trial, .. } => Some(&self.tune.trials[trial]),
            Unit::Scratch { .. } => None,
        };
        let mut cfg = self.tune.config(trial, unit.seed())?;
        cfg.threads = self.threads.unwrap_or(cfg.threads);
        seed_plan.sibling(cfg, self.dir.unit_dir(unit))
    }

    /// Runs `shard`'s share: its teachers, then its units rung by rung, waiting for the
    /// other shards' results where a rung needs them.
    pub fn run_share(&mut self, shard: Shard) -> Result<()> {
        for (position, &seed) in self.tune.section.seeds.iter().enumerate() {
            if shard.owns(position) && self.dir.teacher(seed)?.is_none() {
                let mut plan = self.seed_plan(seed)?;
                tracing::info!("seed {seed}: teacher {}", plan.teacher_source());
                let report = plan.train_teacher()?;
                tracing::info!(
                    "seed {seed}: teacher ready, test accuracy {:.2}%",
                    100.0 * report.test_accuracy
                );
                self.dir.save_teacher(seed, &report)?;
            }
        }
        let progress = TuneProgress::new(self.tune, self.dir)?;
        for rung in 0..self.tune.section.rungs.len() {
            let what = format!("the results of rung {rung} from the other shards");
            let (tune, dir) = (self.tune, self.dir);
            let members = wait_for(&what, || members(tune, dir, rung))?;
            progress.rung_open(rung, &members)?;
            // Shards own whole populations, so that each trains as in one process.
            let all = units(self.tune, rung, &members);
            for (position, batch) in self.batches(&all, shard)?.into_iter().enumerate() {
                if !shard.owns(position) {
                    continue;
                }
                let mut todo = Vec::new();
                for &i in &batch {
                    if self.dir.result(all[i])?.is_none() {
                        todo.push(all[i]);
                    }
                }
                // A population cut short while saving its results: the rest, complete, are
                // only tested (fused, or alone if one is left).
                let results = match todo.len() {
                    0 => continue,
                    1 => vec![self.run_unit(todo[0])?],
                    _ => self.run_fused(&todo)?,
                };
                for (&unit, result) in todo.iter().zip(results) {
                    self.dir.save_result(unit, &result)?;
                    progress.finished(unit, &result)?;
                }
            }
        }
        Ok(())
    }

    /// A rung's units (`all`, in order) in the batches they run in, as positions: several
    /// are a fused population, one a unit trained alone (`tune.fuse = false`: every unit
    /// alone). Decided from the configs alone, the same in every shard of `shard.count`.
    fn batches(&self, all: &[Unit], shard: Shard) -> Result<Vec<Vec<usize>>> {
        let section = &self.tune.section;
        if !section.fuse || section.fuse_members < 2 {
            return Ok((0..all.len()).map(|i| vec![i]).collect());
        }
        let keys = all
            .iter()
            .map(|&unit| match unit {
                Unit::Trial { trial, seed, .. } => {
                    let cfg = self.tune.config(Some(&self.tune.trials[trial]), seed)?;
                    Ok(fusion_key(&cfg))
                }
                Unit::Scratch { .. } => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut batches = populations(all, &keys, section.fuse_members, shard.count);
        // Groups below `fuse_min` train alone, one unit each.
        let small = |b: &Vec<usize>| b.len() < section.fuse_min;
        batches = batches
            .into_iter()
            .flat_map(|b| {
                if small(&b) {
                    b.into_iter().map(|i| vec![i]).collect()
                } else {
                    vec![b]
                }
            })
            .collect();
        Ok(batches)
    }

    /// Trains the trials `units` (one seed, one rung, equal fusion keys) as one fused
    /// population; where the population cannot train, each alone.
    fn run_fused(&mut self, units: &[Unit]) -> Result<Vec<UnitResult>> {
        let seed = units[0].seed();
        let pause = self.pause_of(units[0]);
        self.seed(seed)?;
        let seed_plan = &self.seeds[&seed].plan;
        let plans = units
            .iter()
            .map(|&unit| self.unit_plan(seed_plan, unit))
            .collect::<Result<Vec<Plan>>>()?;
        tracing::info!(
            "seed {seed}: {} trials as one fused population",
            units.len()
        );
        let state = self.seeds.get_mut(&seed).expect("opened above");
        let caches = cached_logits(state, &plans[0])?.map(|i| &state.caches[i].1);
        let layout = self.tune.section.fuse_layout;
        let fitted = match fit_fused(&plans, state.teacher.as_ref(), caches, pause, layout) {
            Ok(fitted) => fitted,
            Err(e) => {
                tracing::warn!(
                    "seed {seed}: the population cannot train fused ({e:#}); its trials train alone"
                );
                drop(plans);
                return units.iter().map(|&u| self.run_unit(u)).collect();
            }
        };
        units
            .iter()
            .zip(&plans)
            .zip(fitted)
            .map(|((&unit, plan), fitted)| match fitted {
                Ok(fitted) => unit_result(unit, plan, Student::Distilled, fitted, pause),
                Err(e) => Ok(failed(unit, format!("{e:#}"))),
            })
            .collect()
    }

    /// Where `unit`'s fit pauses: after its rung's epochs, but at the last rung.
    fn pause_of(&self, unit: Unit) -> Option<usize> {
        let rungs = &self.tune.section.rungs;
        match unit {
            Unit::Trial { rung, .. } => (rung + 1 < rungs.len()).then(|| rungs[rung]),
            Unit::Scratch { .. } => None,
        }
    }

    /// The seed's state, its teacher loaded once the teacher's shard has saved it.
    fn seed(&mut self, seed: u64) -> Result<&mut SeedState> {
        if !self.seeds.contains_key(&seed) {
            let dir = self.dir;
            let what = format!("the teacher of seed {seed} from another shard");
            wait_for(&what, || Ok(dir.teacher(seed)?.map(|_| ())))?;
            let mut plan = self.seed_plan(seed)?;
            let teacher = plan.saved_teacher()?;
            let state = SeedState {
                plan,
                teacher,
                caches: Vec::new(),
            };
            self.seeds.insert(seed, state);
        }
        Ok(self.seeds.get_mut(&seed).expect("inserted above"))
    }

    /// Trains `unit` and, at the end of a student's schedule, tests it.
    fn run_unit(&mut self, unit: Unit) -> Result<UnitResult> {
        let student = match unit {
            Unit::Trial { .. } => Student::Distilled,
            Unit::Scratch { .. } => Student::Scratch,
        };
        let pause = self.pause_of(unit);
        let seed = unit.seed();
        self.seed(seed)?;
        let plan = self.unit_plan(&self.seeds[&seed].plan, unit)?;
        let state = self.seeds.get_mut(&seed).expect("opened above");
        let caches = match student {
            Student::Distilled => cached_logits(state, &plan)?,
            Student::Scratch => None,
        };
        let caches = caches.map(|i| &state.caches[i].1);
        match plan.fit_student(student, state.teacher.as_ref(), caches, pause) {
            Ok(fitted) => unit_result(unit, &plan, student, fitted, pause),
            Err(e) => Ok(failed(unit, format!("{e:#}"))),
        }
    }
}

/// The result of `unit`, fitted (its plan `plan`): its best validation accuracy so far and,
/// at the end of its schedule (no `pause`), its test.
fn unit_result(
    unit: Unit,
    plan: &Plan,
    student: Student,
    fitted: Fitted,
    pause: Option<usize>,
) -> Result<UnitResult> {
    let epochs = &fitted.outcome.history.epochs;
    let best = epochs
        .iter()
        .map(|m| m.val_accuracy)
        .fold(f64::NAN, f64::max);
    let mut result = UnitResult {
        trial: trial_of(unit),
        seed: unit.seed(),
        epochs: epochs.len(),
        val_accuracy: best.is_finite().then_some(best),
        complete: fitted.outcome.complete,
        failed: None,
        seconds: fitted.outcome.seconds,
        tested: None,
    };
    if pause.is_none() {
        result.tested = Some(Tested::of(&plan.test_student(student, fitted)?));
    }
    Ok(result)
}

/// The index into `state.caches` of the teacher's logits of `plan`'s student images,
/// computed the first time they are asked for (`None`: the config does not cache them).
fn cached_logits(state: &mut SeedState, plan: &Plan) -> Result<Option<usize>> {
    let key = images_key(plan.distill_images());
    if let Some(i) = state.caches.iter().position(|(k, _)| *k == key) {
        return Ok(Some(i));
    }
    let Some(caches) = plan.teacher_caches(state.teacher.as_ref())? else {
        return Ok(None);
    };
    state.caches.push((key, caches));
    Ok(Some(state.caches.len() - 1))
}

/// A key of a set of images and labels (equal sets, equal keys).
fn images_key(data: &ImageDataset) -> u64 {
    let mut hasher = DefaultHasher::new();
    data.labels().hash(&mut hasher);
    data.image_shape().hash(&mut hasher);
    match data.images().as_slice() {
        Some(bytes) => bytes.hash(&mut hasher),
        None => data.images().iter().for_each(|b| b.hash(&mut hasher)),
    }
    hasher.finish()
}

fn trial_of(unit: Unit) -> Option<usize> {
    match unit {
        Unit::Trial { trial, .. } => Some(trial),
        Unit::Scratch { .. } => None,
    }
}

/// A unit that failed for `reason` (its first line).
fn failed(unit: Unit, reason: String) -> UnitResult {
    let reason = reason.lines().next().unwrap_or("").to_string();
    tracing::warn!("{unit:?} failed: {reason}");
    UnitResult {
        trial: trial_of(unit),
        seed: unit.seed(),
        epochs: 0,
        val_accuracy: None,
        complete: true,
        failed: Some(reason),
        seconds: 0.0,
        tested: None,
    }
}

/// Polls `ready` every second until it gives a value, saying once a minute what it waits
/// for (`what`: another shard's work).
pub(crate) fn wait_for<T>(what: &str, mut ready: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut told: Option<Instant> = None;
    loop {
        if let Some(value) = ready()? {
            return Ok(value);
        }
        if told.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::info!("waiting for {what}");
            told = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

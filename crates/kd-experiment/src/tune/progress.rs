//! A tune's progress, one line per finished unit and per rung: what finished, its
//! validation accuracy, and a bar of the whole tune's student epochs done (by every shard:
//! counted from the folder) with an estimate of the time left at this process's pace.

use std::time::Instant;

use anyhow::Result;

use super::schedule::{done, standings, total_epochs, total_units, unit_epochs};
use super::space::Tune;
use super::store::{TuneDir, Unit, UnitResult};

/// Counts a tune's work as its units finish.
pub(crate) struct TuneProgress<'a> {
    tune: &'a Tune,
    dir: &'a TuneDir,
    total: usize,
    at_start: usize,
    started: Instant,
}

impl<'a> TuneProgress<'a> {
    pub fn new(tune: &'a Tune, dir: &'a TuneDir) -> Result<Self> {
        let at_start = epochs_done(tune, dir)?;
        Ok(Self {
            tune,
            dir,
            total: total_epochs(tune),
            at_start,
            started: Instant::now(),
        })
    }

    /// Says which configurations `rung` holds (after the first: which went on, and why).
    pub fn rung_open(&self, rung: usize, members: &[usize]) -> Result<()> {
        let epochs = self.tune.section.rungs[rung];
        let rungs = self.tune.section.rungs.len();
        if rung == 0 {
            tracing::info!(
                "rung 1/{rungs}: {} configurations × {} seeds to {epochs} epochs",
                members.len(),
                self.tune.section.seeds.len()
            );
            return Ok(());
        }
        let ranked = standings(self.tune, self.dir, rung - 1)?.unwrap_or_default();
        let best = ranked
            .first()
            .and_then(|s| s.metric.map(|m| (s.trial, m.mean)));
        let best = best.map_or(String::new(), |(t, v)| {
            format!(" (best: #{t}, validation {:.2}%)", 100.0 * v)
        });
        let list: Vec<String> = members.iter().map(|t| format!("#{t}")).collect();
        tracing::info!(
            "rung {rung}/{rungs} done{best}: {} of {} go on to {epochs} epochs: {}",
            members.len(),
            ranked.len(),
            list.join(", ")
        );
        Ok(())
    }

    /// The line of a finished unit, with the bar.
    pub fn finished(&self, unit: Unit, result: &UnitResult) -> Result<()> {
        let what = match unit {
            Unit::Trial { rung, trial, seed } => format!(
                "rung {}/{} #{trial} {} seed {seed}",
                rung + 1,
                self.tune.section.rungs.len(),
                self.tune.trials[trial].label()
            ),
            Unit::Scratch { seed } => format!("scratch student seed {seed}"),
        };
        let outcome = match (&result.failed, result.val_accuracy) {
            (Some(reason), _) => format!("failed: {reason}"),
            (None, Some(v)) => format!(
                "validation {:.2}% after {} epochs{}",
                100.0 * v,
                result.epochs,
                result.tested.as_ref().map_or(String::new(), |t| format!(
                    ", test {:.2}%",
                    100.0 * t.accuracy
                ))
            ),
            (None, None) => "no validation accuracy".into(),
        };
        tracing::info!("{what}: {outcome} {}", self.bar(unit)?);
        Ok(())
    }

    /// `[#####---------------] 14/57 trials, 31% of 570 student epochs, ~12 min left`.
    fn bar(&self, unit: Unit) -> Result<String> {
        let done = done(self.tune, self.dir)?;
        let now: usize = done.iter().map(|(u, _)| unit_epochs(self.tune, *u)).sum();
        let fraction = now as f64 / self.total.max(1) as f64;
        let filled = (fraction * 20.0).round() as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled.min(20)),
            "-".repeat(20 - filled.min(20))
        );
        let here = now
            .saturating_sub(self.at_start)
            .max(unit_epochs(self.tune, unit));
        let per_epoch = self.started.elapsed().as_secs_f64() / here as f64;
        let left = per_epoch * self.total.saturating_sub(now) as f64 / 60.0;
        Ok(format!(
            "[{bar}] {}/{} trials, {:.0}% of {} student epochs, ~{left:.0} min left",
            done.len(),
            total_units(self.tune),
            100.0 * fraction,
            self.total
        ))
    }
}

/// Student epochs of the units done so far, by every shard.
fn epochs_done(tune: &Tune, dir: &TuneDir) -> Result<usize> {
    Ok(done(tune, dir)?
        .iter()
        .map(|(unit, _)| unit_epochs(tune, *unit))
        .sum())
}

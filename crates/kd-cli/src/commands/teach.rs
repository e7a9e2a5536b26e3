//! `kd-cli teach CONFIG --out logits.kdl`: the config's teacher's logits of the run's
//! images, written once as a file that `teacher.logits` reads.

use std::path::PathBuf;

use clap::Args;
use kd_experiment::config::{DeviceChoice, Override};
use kd_experiment::run::RunOverrides;
use kd_experiment::teach::{teach, teacher_card};
use kd_models::summary::thousands;

#[derive(Debug, Args)]
pub struct TeachArgs {
    /// The experiment's TOML config (its teacher, data, split and seed).
    config: PathBuf,
    /// Where to write the teacher logits file.
    #[arg(long, required_unless_present = "card")]
    out: Option<PathBuf>,
    /// Print the teacher's card: test accuracy, calibration error (15 bins) before and
    /// after the distillation temperature, an ensemble's member agreement, file digests.
    #[arg(long)]
    card: bool,
    /// Overrides one config key, as `run --set` does (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<Override>,
    /// Overrides the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// The run directory the teacher trains in (or is resumed from), as `run --out`.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Overrides the config's device: `cpu`, `cuda`, or `auto`.
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
    /// Overrides the config's thread count.
    #[arg(long)]
    threads: Option<usize>,
}

impl TeachArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let overrides = RunOverrides {
            out: self.run_dir,
            seed: self.seed,
            sets: self.sets,
            device: self.device,
            threads: self.threads,
            ..Default::default()
        };
        let Some(out) = self.out else {
            print!("{}", teacher_card(&self.config, &overrides)?.text());
            return Ok(());
        };
        let taught = teach(&self.config, &overrides, &out)?;
        if let (true, Some(card)) = (self.card, &taught.card) {
            print!("{}", card.text());
        }
        let [train, val, test] = taught.images.map(thousands);
        println!(
            "wrote {} ({} bytes): logits of {train} training, {val} validation and {test} test images by {}; test accuracy {:.2}%",
            taught.path.display(),
            thousands(taught.bytes as usize),
            taught.teacher,
            100.0 * taught.test_accuracy
        );
        println!(
            "use it with: kd-cli run {} --set teacher.logits={}",
            self.config.display(),
            taught.path.display()
        );
        Ok(())
    }
}

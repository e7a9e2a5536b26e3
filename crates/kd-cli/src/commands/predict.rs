//! `kd-cli predict MODEL IMAGE...`: the top classes of each image.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use kd_experiment::predict::{predict, text};

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A `.safetensors` file from a run directory.
    model: PathBuf,
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image (at least 1).
    #[arg(long, default_value_t = 3, value_parser = parse_top_k)]
    top_k: usize,
    #[command(flatten)]
    compute: super::Compute,
    /// Print JSON instead of one line per image.
    #[arg(long)]
    json: bool,
}

/// `--top-k`'s parser: a count of at least 1.
fn parse_top_k(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("expected at least 1 class per image, got 0".into()),
        Ok(k) => Ok(k),
        Err(_) => Err(format!("expected a whole number of classes, got {text:?}")),
    }
}

impl PredictArgs {
    /// Prints the predictions of the images that could be read, names each that could not,
    /// and fails if any could not.
    pub fn run(self) -> anyhow::Result<()> {
        let device = self.compute.apply()?;
        let precision = self.compute.precision;
        let p = predict(&self.model, &self.images, self.top_k, device, precision)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&p.predicted)?);
        } else {
            print!("{}", text(&p.predicted));
        }
        if let ([], [only]) = (p.predicted.as_slice(), p.failed.as_slice()) {
            bail!("{only}");
        }
        for failure in &p.failed {
            eprintln!("error: {failure}");
        }
        if !p.failed.is_empty() {
            let others = if p.predicted.is_empty() {
                ""
            } else {
                "; the others are predicted"
            };
            bail!(
                "{} of {} images could not be read (named above){others}",
                p.failed.len(),
                p.failed.len() + p.predicted.len(),
            );
        }
        Ok(())
    }
}

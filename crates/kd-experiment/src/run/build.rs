//! Building a model as the run configures every model: its precision (float32, bfloat16
//! autocast, float16) and memory format (channels-last or not).

use anyhow::{Context, Result};
use kd_models::{Model, ModelConfig};
use tch::Device;

use crate::config::RunConfig;

/// Builds `model` for `[channels, height, classes]` on `device` with the run's precision and
/// memory format.
pub(super) fn build_model(
    cfg: &RunConfig,
    model: &ModelConfig,
    [channels, height, classes]: [usize; 3],
    device: Device,
) -> Result<Model> {
    let mut built = Model::new(model, channels, height, classes, device)?;
    built
        .set_precision(cfg.precision())
        .context("precision: invalid config")?;
    if cfg.channels_last {
        built.use_channels_last();
    }
    Ok(built)
}

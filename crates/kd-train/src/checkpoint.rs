//! Checkpoints of a training run, so that an interrupted run — even one killed mid-epoch —
//! continues to the result it would have reached uninterrupted (in the spirit of Keras'
//! `BackupAndRestore` and `ModelCheckpoint(save_best_only=True)`).
//!
//! A fit with checkpoints keeps, in its directory:
//!
//! ```text
//! last.safetensors   written after every epoch and at the end, atomically (one file, so the
//!                    state is always whole): model/<var>, optimizer/exp_avg/<var>,
//!                    optimizer/exp_avg_sq/<var>, best/<var> (the weights early stopping would
//!                    restore), rng/cpu and rng/cuda (libtorch's generator states); the rest of
//!                    the state (epoch, step, learning rate, callbacks, loss scaler, history,
//!                    events, configuration) is JSON in the header's `kd.train_state`
//! best.safetensors   the model at its best epoch so far (early stopping's monitor and
//!                    min_delta), an ordinary model file with the caller's metadata
//! ```
//!
//! Resuming starts from the end of the last completed epoch: the loader draws each epoch's
//! order and augmentation from `(seed, epoch)` and the generators come back as they were, so
//! the epoch that was cut short is replayed exactly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kd_models::tensor_file::{read_tensors, write_tensors};
use kd_models::Model;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::callback::{EarlyStopping, ReduceLrOnPlateau};
use crate::error::{Result, TrainError};
use crate::loss_scale::LossScaler;
use crate::metrics::History;
use crate::optimizer::Adam;
use crate::trainer::{TrainConfig, TrainEvent};

/// Deep copies of a model's variables by name (early stopping's best weights).
pub(crate) type Snapshot = HashMap<String, Tensor>;

/// Version of the `last.safetensors` layout.
const FORMAT: u32 = 1;
/// The header key that holds the JSON state.
pub const STATE_KEY: &str = "kd.train_state";

/// Where a fit keeps its checkpoints, and whether it picks up the last one.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    fingerprint: String,
    model_metadata: BTreeMap<String, String>,
    resume: bool,
    /// False on data-parallel ranks other than 0: they resume from rank 0's checkpoints but
    /// never write them.
    writes: bool,
}

impl Checkpoints {
    /// Checkpoints in `dir`; `fingerprint` identifies the experiment (a hash of its
    /// configuration, say): a checkpoint with another fingerprint is never resumed.
    pub fn new(dir: impl Into<PathBuf>, fingerprint: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            fingerprint: fingerprint.into(),
            model_metadata: BTreeMap::new(),
            resume: false,
            writes: true,
        }
    }

    /// Metadata for the header of `best.safetensors` (what the model is).
    pub fn with_model_metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.model_metadata = metadata;
        self
    }

    /// Continue from `last.safetensors` if there is one (otherwise start over and replace
    /// whatever is there).
    pub fn resuming(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Reads (to resume) but never writes: another process writes them.
    pub fn read_only(mut self) -> Self {
        self.writes = false;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The checkpoint written after every epoch.
    pub fn last_path(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }

    /// The model at its best epoch.
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }

    fn create_dir(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|source| TrainError::Io {
            path: self.dir.clone(),
            source,
        })
    }

    /// Writes the model as the best so far (epoch `epoch`).
    pub(crate) fn save_best(&self, model: &Model, epoch: usize) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        self.create_dir()?;
        let mut metadata = self.model_metadata.clone();
        metadata.insert("kd.epoch".into(), epoch.to_string());
        model
            .save_with_metadata(&self.best_path(), &metadata)
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        Ok(())
    }

    /// Writes `last.safetensors`.
    pub(crate) fn save_last(
        &self,
        state: &TrainState,
        model: &Model,
        optimizer: &Adam,
        best: Option<&Snapshot>,
    ) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        self.create_dir()?;
        let mut tensors: Vec<(String, Tensor)> = model
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| (format!("model/{name}"), t.detach()))
            .collect();
        let (moments, _) = optimizer.state();
        tensors.extend(
            moments
                .into_iter()
                .map(|(name, t)| (format!("optimizer/{name}"), t)),
        );
        if let Some(best) = best {
            tensors.extend(
                best.iter()
                    .map(|(name, t)| (format!("best/{name}"), t.shallow_clone())),
            );
        }
        for (key, device) in generator_devices(model.var_store().device()) {
            tensors.push((key.into(), rng_state(device)?));
        }
        let json = serde_json::to_string(state)
            .map_err(|e| TrainError::Checkpoint(format!("state does not serialize: {e}")))?;
        let metadata = BTreeMap::from([(STATE_KEY.to_string(), json)]);
        write_tensors(&self.last_path(), &tensors, &metadata)
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        Ok(())
    }

    /// Reads `last.safetensors` if resuming and it exists, checks it belongs to this fit
    /// (`phase`, `config`, the fingerprint) and puts the model, optimizer and generators back
    /// as they were; returns the rest of the state and the best-weights snapshot.
    pub(crate) fn restore_last(
        &self,
        phase: &str,
        config: &TrainConfig,
        model: &Model,
        optimizer: &mut Adam,
    ) -> Result<Option<(TrainState, Option<Snapshot>)>> {
        let path = self.last_path();
        if !self.resume || !path.exists() {
            return Ok(None);
        }
        let bad = |detail: String| TrainError::Checkpoint(format!("{}: {detail}", path.display()));
        let metadata = kd_models::metadata::read_metadata(&path).map_err(|e| bad(e.to_string()))?;
        let json = metadata.get(STATE_KEY).ok_or_else(|| {
            bad(format!(
                "not a kd checkpoint (no {STATE_KEY} in its header)"
            ))
        })?;
        let state: TrainState =
            serde_json::from_str(json).map_err(|e| bad(format!("unreadable state: {e}")))?;
        if state.format != FORMAT {
            return Err(bad(format!(
                "checkpoint format {}, this kd reads format {FORMAT}",
                state.format
            )));
        }
        if state.fingerprint != self.fingerprint || state.phase != phase || state.config != *config
        {
            return Err(bad(format!(
                "written by another configuration (phase {:?}, fingerprint {}), not this run's (phase {phase:?}, fingerprint {})",
                state.phase, state.fingerprint, self.fingerprint
            )));
        }
        let mut tensors = read_tensors(&path).map_err(|e| bad(e.to_string()))?;
        let mut take = |prefix: &str| -> BTreeMap<String, Tensor> {
            let keys: Vec<String> = tensors
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            keys.into_iter()
                .map(|k| {
                    let t = tensors.remove(&k).expect("listed key");
                    (k[prefix.len()..].to_string(), t)
                })
                .collect()
        };
        let weights = take("model/");
        let moments = take("optimizer/");
        let best = take("best/");
        let rng = take("rng/");
        model
            .copy_from(&weights, true)
            .map_err(|e| bad(format!("model: {e}")))?;
        optimizer
            .load_state(&moments, &state.adam_steps)
            .map_err(|e| bad(e.to_string()))?;
        for (key, device) in generator_devices(model.var_store().device()) {
            let saved = rng
                .get(key.trim_start_matches("rng/"))
                .ok_or_else(|| bad(format!("no {key}")))?;
            kd_sys::set_rng_state(device, saved).map_err(|e| bad(e.to_string()))?;
        }
        let best = if state.best_kept {
            // Every variable, with its shape: restoring them must not fail later.
            let vars = model.var_store().variables();
            for (name, var) in &vars {
                match best.get(name) {
                    Some(t) if t.size() == var.size() => {}
                    Some(t) => {
                        return Err(bad(format!(
                            "best/{name} has shape {:?}, the model's {:?}",
                            t.size(),
                            var.size()
                        )))
                    }
                    None => return Err(bad(format!("no best/{name}"))),
                }
            }
            let device = model.var_store().device();
            Some(
                best.into_iter()
                    .filter(|(name, _)| vars.contains_key(name))
                    .map(|(name, t)| (name, t.to_device(device)))
                    .collect(),
            )
        } else {
            None
        };
        Ok(Some((state, best)))
    }
}

/// The generators a fit on `device` draws from, by checkpoint key.
fn generator_devices(device: Device) -> Vec<(&'static str, Device)> {
    let mut devices = vec![("rng/cpu", Device::Cpu)];
    if let Device::Cuda(_) = device {
        devices.push(("rng/cuda", device));
    }
    devices
}

fn rng_state(device: Device) -> Result<Tensor> {
    kd_sys::rng_state(device).map_err(|e| TrainError::Checkpoint(e.to_string()))
}

/// Everything about a fit in progress that is not a tensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainState {
    pub format: u32,
    pub fingerprint: String,
    pub phase: String,
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken (for per-step schedules).
    pub step: usize,
    /// The base learning rate (after any reductions).
    pub lr: f64,
    pub adam_steps: BTreeMap<String, i64>,
    pub early: Option<EarlyStopping>,
    pub reduce: Option<ReduceLrOnPlateau>,
    pub scaler: Option<LossScaler>,
    pub history: History,
    pub events: Vec<TrainEvent>,
    /// Whether `best/<var>` tensors hold early stopping's best weights.
    pub best_kept: bool,
    /// The best monitored value so far and its epoch (what `best.safetensors` holds).
    #[serde(with = "crate::json_float")]
    pub best_value: f64,
    pub best_epoch: usize,
    /// Training time spent before this process.
    pub seconds: f64,
    pub stopped_epoch: Option<usize>,
    /// The fit is over: the model holds its final weights.
    pub complete: bool,
}

impl TrainState {
    pub(crate) fn new(fingerprint: &str, phase: &str, config: &TrainConfig) -> Self {
        Self {
            format: FORMAT,
            fingerprint: fingerprint.into(),
            phase: phase.into(),
            config: config.clone(),
            epoch: 0,
            step: 0,
            lr: config.lr,
            adam_steps: BTreeMap::new(),
            early: None,
            reduce: None,
            scaler: None,
            history: History::default(),
            events: Vec::new(),
            best_kept: false,
            best_value: config.early_stopping.monitor.worst(),
            best_epoch: 0,
            seconds: 0.0,
            stopped_epoch: None,
            complete: false,
        }
    }
}

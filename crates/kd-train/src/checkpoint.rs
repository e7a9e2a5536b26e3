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
//!                    events, configuration) is JSON in the header's `kd.train_state`, laid
//!                    out by [`crate::state`]
//! best.safetensors   the model at its best epoch so far (early stopping's monitor and
//!                    min_delta), an ordinary model file with the caller's metadata
//! ```
//!
//! Resuming starts from the end of the last completed epoch: the loader draws each epoch's
//! order and augmentation from `(seed, epoch)` and the generators come back as they were, so
//! the epoch that was cut short is replayed exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kd_models::tensor_file::{read_tensors, write_tensors};
use kd_models::Network;
use tch::{Device, Tensor};

use crate::config::TrainConfig;
use crate::error::{CheckpointError, Result, TrainError};
use crate::optimizer::Adam;
use crate::snapshot::Snapshot;
use crate::state::{FormatOnly, TrainState, FORMAT, STATE_KEY};

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

    /// The directory the checkpoints are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration fingerprint every checkpoint carries and a resume must match.
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
        std::fs::create_dir_all(&self.dir).map_err(|cause| TrainError::Io {
            path: self.dir.clone(),
            cause,
        })
    }

    /// Writes the model as the best so far (epoch `epoch`).
    pub(crate) fn save_best(&self, model: &dyn Network, epoch: usize) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        self.create_dir()?;
        let mut metadata = self.model_metadata.clone();
        metadata.insert("kd.epoch".into(), epoch.to_string());
        let path = self.best_path();
        model
            .save_with_metadata(&path, &metadata)
            .map_err(|cause| failed(&path, CheckpointError::File { cause }))?;
        Ok(())
    }

    /// Writes `last.safetensors`.
    pub(crate) fn save_last(
        &self,
        state: &TrainState,
        model: &dyn Network,
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
        let path = self.last_path();
        for (key, device) in generator_devices(model.var_store().device()) {
            let state = kd_sys::rng_state(device)
                .map_err(|cause| failed(&path, CheckpointError::Generator { cause }))?;
            tensors.push((key.into(), state));
        }
        let json = serde_json::to_string(state)
            .map_err(|cause| failed(&path, CheckpointError::State { cause }))?;
        let metadata = BTreeMap::from([(STATE_KEY.to_string(), json)]);
        write_tensors(&path, &tensors, &metadata)
            .map_err(|cause| failed(&path, CheckpointError::File { cause }))?;
        Ok(())
    }

    /// Reads `last.safetensors` if resuming and it exists, checks it belongs to this fit
    /// (`phase`, `config`, the fingerprint) and puts the model, optimizer and generators back
    /// as they were; returns the rest of the state and the best-weights snapshot.
    pub(crate) fn restore_last(
        &self,
        phase: &str,
        config: &TrainConfig,
        model: &dyn Network,
        optimizer: &mut Adam,
    ) -> Result<Option<(TrainState, Option<Snapshot>)>> {
        let path = self.last_path();
        if !self.resume || !path.exists() {
            return Ok(None);
        }
        let bad = |cause: CheckpointError| failed(&path, cause);
        let state = self.read_state(&path, phase, config).map_err(bad)?;
        let mut tensors =
            read_tensors(&path).map_err(|cause| bad(CheckpointError::File { cause }))?;
        let weights = take_prefixed(&mut tensors, "model/");
        let moments = take_prefixed(&mut tensors, "optimizer/");
        let best = take_prefixed(&mut tensors, "best/");
        let rng = take_prefixed(&mut tensors, "rng/");
        model
            .copy_from(&weights, true)
            .map_err(|mismatch| bad(CheckpointError::Weights { mismatch }))?;
        optimizer
            .load_state(&moments, &state.adam_steps)
            .map_err(bad)?;
        for (key, device) in generator_devices(model.var_store().device()) {
            let saved = rng
                .get(key.trim_start_matches("rng/"))
                .ok_or_else(|| bad(CheckpointError::Missing { name: key.into() }))?;
            kd_sys::set_rng_state(device, saved)
                .map_err(|cause| bad(CheckpointError::Generator { cause }))?;
        }
        let best = match state.best_kept {
            true => Some(best_snapshot(best, model).map_err(bad)?),
            false => None,
        };
        Ok(Some((state, best)))
    }

    /// The resume state of the checkpoint at `path`, checked: written in this format, by
    /// this fit (`phase`, `config`, the fingerprint).
    fn read_state(
        &self,
        path: &Path,
        phase: &str,
        config: &TrainConfig,
    ) -> std::result::Result<TrainState, CheckpointError> {
        let metadata = kd_models::metadata::read_metadata(path)
            .map_err(|cause| CheckpointError::File { cause })?;
        let json = metadata
            .get(STATE_KEY)
            .ok_or(CheckpointError::NotACheckpoint { missing: STATE_KEY })?;
        let unreadable = |cause| CheckpointError::State { cause };
        // The version first: an older layout is refused by name, not by a parse error.
        let found = serde_json::from_str::<FormatOnly>(json)
            .map_err(unreadable)?
            .format;
        if found != FORMAT {
            return Err(CheckpointError::Format {
                found,
                expected: FORMAT,
            });
        }
        let state: TrainState = serde_json::from_str(json).map_err(unreadable)?;
        if state.fingerprint != self.fingerprint || state.phase != phase || state.config != *config
        {
            return Err(CheckpointError::OtherRun {
                found_phase: state.phase,
                found_fingerprint: state.fingerprint,
                phase: phase.into(),
                fingerprint: self.fingerprint.clone(),
            });
        }
        Ok(state)
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

/// A checkpoint error about the file at `path`.
fn failed(path: &Path, cause: CheckpointError) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        cause: Box::new(cause),
    }
}

/// The tensors of `tensors` whose names start with `prefix`, removed from it and named
/// without the prefix.
fn take_prefixed(tensors: &mut BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
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
}

/// The best weights a checkpoint kept (`best`), checked against every variable of `model`
/// with its shape (restoring them must not fail later) and moved to its device.
fn best_snapshot(
    best: BTreeMap<String, Tensor>,
    model: &dyn Network,
) -> std::result::Result<Snapshot, CheckpointError> {
    let vars = model.var_store().variables();
    for (name, var) in &vars {
        match best.get(name) {
            Some(t) if t.size() == var.size() => {}
            Some(t) => {
                return Err(CheckpointError::Shape {
                    name: format!("best/{name}"),
                    found: t.size(),
                    expected: var.size(),
                })
            }
            None => {
                return Err(CheckpointError::Missing {
                    name: format!("best/{name}"),
                })
            }
        }
    }
    let device = model.var_store().device();
    Ok(best
        .into_iter()
        .filter(|(name, _)| vars.contains_key(name))
        .map(|(name, t)| (name, t.to_device(device)))
        .collect())
}

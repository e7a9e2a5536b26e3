//! The resume state of a fit: everything about a fit in progress that is not a tensor, as it
//! is written, in JSON, into the header of `last.safetensors` (see [`crate::checkpoint`]).
//! This file is the on-disk format: a change here is a change of [`FORMAT`].
//!
//! Format 2 keeps the callbacks' states by callback name and the best epoch once (the
//! [`BestTracker`]); format 1 (early stopping's and ReduceLROnPlateau's states in fields of
//! their own, the best value twice) is refused, naming both versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::callback::list::CallbackStates;
use crate::callback::BestTracker;
use crate::config::TrainConfig;
use crate::loss_scale::LossScaler;
use crate::metrics::History;

/// Version of the `last.safetensors` layout.
pub const FORMAT: u32 = 2;
/// The header key that holds the JSON state.
pub const STATE_KEY: &str = "kd.train_state";

/// One callback action (or other milestone) of a fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEvent {
    /// 1-based epoch after which it happened.
    pub epoch: usize,
    /// `early_stopping`, `reduce_lr`, `best_weights_kept`, `best_weights_restored`,
    /// `best_checkpoint`, `skipped_nonfinite` or `resumed`.
    pub action: String,
    /// Human-readable detail, e.g. `lr 1.00e-3 -> 1.00e-4`.
    pub detail: String,
}

/// What a training run produced besides the trained weights.
#[derive(Debug, Clone, Serialize)]
pub struct FitOutcome {
    /// Every epoch's metrics.
    pub history: History,
    /// What the callbacks did, in order.
    pub events: Vec<TrainEvent>,
    /// The epoch a callback ended training at, if one did.
    pub stopped_epoch: Option<usize>,
    /// Training time, summed over the processes of a resumed run.
    pub seconds: f64,
    /// Whether the fit is over (false when it paused: [`crate::FitHooks::pause_after`]).
    pub complete: bool,
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
    /// The best epoch so far, by the run's monitor.
    pub best: BestTracker,
    /// Each callback's state, by name.
    pub callbacks: CallbackStates,
    pub scaler: Option<LossScaler>,
    pub history: History,
    pub events: Vec<TrainEvent>,
    /// Whether `best/<var>` tensors hold the best weights kept for restoring.
    pub best_kept: bool,
    /// Training time spent before this process.
    pub seconds: f64,
    pub stopped_epoch: Option<usize>,
    /// The fit is over: the model holds its final weights.
    pub complete: bool,
}

/// The first thing read from a saved state, before the rest is trusted to parse.
#[derive(Deserialize)]
pub(crate) struct FormatOnly {
    pub format: u32,
}

impl TrainState {
    /// A fit of `phase` under `config` that has not started.
    pub(crate) fn new(
        fingerprint: &str,
        phase: &str,
        config: &TrainConfig,
        best: BestTracker,
    ) -> Self {
        Self {
            format: FORMAT,
            fingerprint: fingerprint.into(),
            phase: phase.into(),
            config: config.clone(),
            epoch: 0,
            step: 0,
            lr: config.lr,
            adam_steps: BTreeMap::new(),
            best,
            callbacks: CallbackStates::new(),
            scaler: None,
            history: History::default(),
            events: Vec::new(),
            best_kept: false,
            seconds: 0.0,
            stopped_epoch: None,
            complete: false,
        }
    }

    /// Records an event after `epoch`.
    pub(crate) fn event(&mut self, epoch: usize, action: &str, detail: String) {
        self.events.push(TrainEvent {
            epoch,
            action: action.into(),
            detail,
        });
    }

    /// The outcome of a complete fit.
    pub(crate) fn outcome(&self) -> FitOutcome {
        FitOutcome {
            history: self.history.clone(),
            events: self.events.clone(),
            stopped_epoch: self.stopped_epoch,
            seconds: self.seconds,
            complete: self.complete,
        }
    }
}

//! The state of one fit in progress — model, optimizer, resume state, callbacks and the
//! best weights kept — and what the loop does with it besides stepping: start fresh or
//! from the last checkpoint, carry out the callbacks' actions, checkpoint, finish.

use std::path::PathBuf;

use kd_models::Network;

use crate::callback::{Action, Callback, CallbackList};
use crate::checkpoint::Checkpoints;
use crate::config::TrainConfig;
use crate::error::{Result, ResumePoint, TrainError};
use crate::graphed::Replay;
use crate::snapshot::{restore, snapshot, Snapshot};
use crate::state::{FitOutcome, TrainState};
use crate::stepper::Stepper;

/// When callbacks' actions are carried out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum When {
    /// After epoch `n` (1-based).
    EpochEnd(usize),
    /// Once training is over.
    TrainEnd,
}

/// A fit in progress.
pub(crate) struct Training<'a> {
    pub model: &'a dyn Network,
    pub config: &'a TrainConfig,
    pub phase: &'a str,
    pub checkpoints: Option<&'a Checkpoints>,
    /// The optimizer, loss scaler and graphs every step goes through.
    pub stepper: Stepper,
    pub state: TrainState,
    pub callbacks: CallbackList,
    /// The best weights, kept while a callback may ask to restore them.
    pub best: Option<Snapshot>,
    /// The checkpoint this fit resumed from.
    pub resumed_from: Option<PathBuf>,
    /// Batches per epoch (per-step schedules run over `epochs` times this).
    pub steps_per_epoch: usize,
    /// The epoch to pause after ([`crate::FitHooks::pause_after`]).
    pub pause_after: Option<usize>,
}

impl<'a> Training<'a> {
    /// A fresh fit, or — when `checkpoints` resume and hold one — the fit of the last
    /// checkpoint, with model, optimizer, generators, callbacks and best weights put back;
    /// its full batches step through CUDA graphs replayed as `graphs` says, if given.
    pub fn start(
        model: &'a dyn Network,
        (config, phase): (&'a TrainConfig, &'a str),
        checkpoints: Option<&'a Checkpoints>,
        steps_per_epoch: usize,
        own_callbacks: Vec<Box<dyn Callback>>,
        graphs: Option<Replay>,
    ) -> Result<Self> {
        let mut stepper = Stepper::new(model, config.lr, config.weight_decay);
        if let Some(replay) = graphs {
            tracing::info!(
                "{phase}: training steps of {} images as CUDA graphs",
                config.batch_size
            );
            stepper.use_graphs(replay, Some(config.batch_size));
        }
        let mut callbacks = CallbackList::from_config(config, checkpoints.is_some())?;
        for callback in own_callbacks {
            callbacks.push(callback, phase)?;
        }
        let fingerprint = checkpoints.map_or("", |c| c.fingerprint());
        let mut state = TrainState::new(fingerprint, phase, config, callbacks.best().clone());
        let (mut best, mut resumed_from) = (None, None);
        if let Some(ck) = checkpoints {
            let opt = stepper.optimizer_mut();
            if let Some((restored, snap)) = ck.restore_last(phase, config, model, opt)? {
                callbacks
                    .load_states(restored.best.clone(), &restored.callbacks)
                    .map_err(|cause| TrainError::Checkpoint {
                        path: ck.last_path(),
                        cause: Box::new(cause),
                    })?;
                state = restored;
                best = snap;
                stepper.set_lr(state.lr);
                // A float16 fit's loss scaler comes back from its checkpoint.
                stepper.set_scaler(state.scaler.take());
                resumed_from = Some(ck.last_path());
            }
        }
        Ok(Self {
            model,
            config,
            phase,
            checkpoints,
            stepper,
            state,
            callbacks,
            best,
            resumed_from,
            steps_per_epoch,
            pause_after: None,
        })
    }

    /// The fit, set to pause after epoch `pause_after`: an error without checkpoints to
    /// resume from, or for epoch 0.
    pub fn pausing_after(mut self, pause_after: Option<usize>) -> Result<Self> {
        let refuse = |expected: &str| TrainError::InvalidConfig {
            key: format!("{}: pause_after", self.phase),
            expected: expected.into(),
            got: format!("{pause_after:?}"),
        };
        match pause_after {
            Some(0) => return Err(refuse("an epoch from 1")),
            Some(_) if self.checkpoints.is_none() => {
                return Err(refuse("checkpoints to resume from"))
            }
            _ => {}
        }
        self.pause_after = pause_after;
        Ok(self)
    }

    /// Whether the fit pauses after `epoch` (just checkpointed).
    pub fn pauses_after(&self, epoch: usize) -> bool {
        let pause = self.pause_after == Some(epoch);
        if pause {
            tracing::debug!("{}: paused after epoch {epoch}", self.phase);
        }
        pause
    }

    /// Optimizer steps of the whole fit (what per-step schedules run over).
    pub fn total_steps(&self) -> usize {
        self.config.epochs * self.steps_per_epoch
    }

    /// Where this fit starts.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            epoch: self.state.epoch,
            step: self.state.step,
            complete: self.state.complete,
        }
    }

    /// Says that (and where from) the fit resumed; the outcome if it was already complete,
    /// or already past its pause (whoever paused it lost what it learnt then).
    pub fn announce_resume(&mut self) -> Option<FitOutcome> {
        let path = self.resumed_from.as_ref()?;
        if self
            .pause_after
            .is_some_and(|pause| self.state.epoch >= pause)
            && !self.state.complete
        {
            return Some(self.state.outcome());
        }
        let phase = self.phase;
        if self.state.complete {
            tracing::info!(
                "{phase}: complete in {}, final weights loaded",
                path.display()
            );
            return Some(self.state.outcome());
        }
        tracing::info!(
            "{phase}: resuming after epoch {} from {}",
            self.state.epoch,
            path.display()
        );
        let detail = format!("from {}", path.display());
        self.state.event(self.state.epoch, "resumed", detail);
        None
    }

    /// Carries out `actions` in order; returns whether one of them stops training.
    pub fn apply(&mut self, actions: Vec<Action>, when: When) -> Result<bool> {
        let phase = self.phase;
        let epoch = match when {
            When::EpochEnd(epoch) => epoch,
            When::TrainEnd => self.state.history.epochs.len(),
        };
        let mut stop = false;
        for action in actions {
            match action {
                Action::SaveBest => self.save_best(epoch)?,
                Action::Stop => {
                    stop = true;
                    let es = &self.config.early_stopping;
                    tracing::info!(
                        "{phase} epoch {epoch}: early stopping (no improvement of {} for {} epochs)",
                        es.monitor.name(),
                        es.patience
                    );
                    let detail = "no improvement for `patience` epochs".into();
                    self.state.event(epoch, "early_stopping", detail);
                }
                Action::SetLr(new) => {
                    let old = self.state.lr;
                    tracing::info!(
                        "{phase} epoch {epoch}: ReduceLROnPlateau reducing the learning rate from {old:.2e} to {new:.2e}"
                    );
                    self.state
                        .event(epoch, "reduce_lr", format!("lr {old:.2e} -> {new:.2e}"));
                    self.set_lr(new);
                }
                Action::SnapshotBest => {
                    self.best = Some(snapshot(self.model));
                    self.state
                        .event(epoch, "best_weights_kept", format!("epoch {epoch}"));
                }
                Action::RestoreBest => self.restore_best(when),
            }
        }
        Ok(stop)
    }

    /// The base learning rate from now on.
    pub fn set_lr(&mut self, lr: f64) {
        self.state.lr = lr;
        self.stepper.set_lr(lr);
    }

    fn save_best(&mut self, epoch: usize) -> Result<()> {
        let Some(ck) = self.checkpoints else {
            return Ok(());
        };
        ck.save_best(self.model, epoch)?;
        let best = self.callbacks.best();
        let detail = format!(
            "{} ({:?} {:.4})",
            ck.best_path().display(),
            best.monitor(),
            best.best()
        );
        self.state.event(epoch, "best_checkpoint", detail);
        Ok(())
    }

    fn restore_best(&mut self, when: When) {
        let Some(snap) = &self.best else {
            return;
        };
        restore(self.model, snap);
        let (phase, best_epoch) = (self.phase, self.callbacks.best().best_epoch());
        match when {
            When::EpochEnd(epoch) => {
                tracing::info!(
                    "{phase} epoch {epoch}: restoring the weights of the best epoch ({best_epoch})"
                );
                self.state
                    .event(epoch, "best_weights_restored", "on early stopping".into());
            }
            When::TrainEnd => {
                tracing::info!(
                    "{phase}: restoring the weights of the best epoch ({best_epoch}) at the end of training"
                );
                let epoch = self.state.history.epochs.len();
                self.state.event(
                    epoch,
                    "best_weights_restored",
                    "at the end of training".into(),
                );
            }
        }
    }

    /// Writes `last.safetensors` (if checkpointing), `seconds` of training so far.
    pub fn save_last(&mut self, seconds: f64) -> Result<()> {
        self.state.seconds = seconds;
        let Some(ck) = self.checkpoints else {
            return Ok(());
        };
        self.state.adam_steps = self.stepper.optimizer().state().1;
        self.state.scaler = self.stepper.scaler().cloned();
        self.state.best_kept = self.best.is_some();
        (self.state.best, self.state.callbacks) = self.callbacks.states();
        let opt = self.stepper.optimizer();
        ck.save_last(&self.state, self.model, opt, self.best.as_ref())
    }

    /// Marks the fit complete after `seconds` of training, writes its final checkpoint and
    /// returns its outcome.
    pub fn finish(mut self, seconds: f64) -> Result<FitOutcome> {
        self.state.complete = true;
        self.save_last(seconds)?;
        Ok(self.state.outcome())
    }
}

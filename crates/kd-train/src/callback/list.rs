//! The callbacks of one fit, in the order Keras runs them: the best checkpoint, early
//! stopping, then learning-rate reduction. The list decides "best" once per epoch
//! ([`BestTracker`]) before asking its callbacks, and keeps their states for checkpoints.

use std::collections::BTreeMap;

use super::{Action, BestCheckpoint, BestTracker, Callback, EpochEnd};
use crate::config::TrainConfig;
use crate::error::{CheckpointError, Result};
use crate::metrics::History;

/// The callbacks' saved states, by name.
pub type CallbackStates = BTreeMap<String, serde_json::Value>;

/// The callbacks of a fit and its best-epoch tracker.
#[derive(Debug)]
pub struct CallbackList {
    best: BestTracker,
    callbacks: Vec<Box<dyn Callback>>,
}

impl CallbackList {
    /// The callbacks `config` enables; with `checkpoints`, the best checkpoint as well.
    /// "Best" follows early stopping's monitor and `min_delta` even when early stopping is
    /// off (so the best checkpoint means the same thing with or without it).
    pub fn from_config(config: &TrainConfig, checkpoints: bool) -> Result<Self> {
        let es = &config.early_stopping;
        let mut callbacks: Vec<Box<dyn Callback>> = Vec::new();
        if checkpoints {
            callbacks.push(Box::new(BestCheckpoint));
        }
        if es.enabled {
            callbacks.push(Box::new(es.build("early_stopping")?));
        }
        if config.reduce_lr.enabled {
            callbacks.push(Box::new(config.reduce_lr.build("reduce_lr")?));
        }
        Ok(Self::new(
            BestTracker::new(es.monitor.clone(), es.min_delta),
            callbacks,
        ))
    }

    /// `callbacks`, run in this order, with `best` deciding improvements.
    pub fn new(best: BestTracker, callbacks: Vec<Box<dyn Callback>>) -> Self {
        Self { best, callbacks }
    }

    /// Appends `callback`, run after the others; an error names a callback whose name one
    /// in the list already has (their states are kept by name). `phase` names the fit.
    pub fn push(&mut self, callback: Box<dyn Callback>, phase: &str) -> Result<()> {
        let name = callback.name();
        if self.callbacks.iter().any(|c| c.name() == name) {
            return Err(crate::TrainError::InvalidConfig {
                key: format!("{phase}: callbacks"),
                expected: "callbacks with distinct names (each one's checkpoint state is kept under its name)".into(),
                got: format!("two named {name:?}"),
            });
        }
        self.callbacks.push(callback);
        Ok(())
    }

    /// The best epoch so far.
    pub fn best(&self) -> &BestTracker {
        &self.best
    }

    /// Every callback's actions on the latest epoch of `history` (`lr`: the rate in use), in
    /// list order. All decide before any action is carried out.
    pub fn on_epoch_end(&mut self, history: &History, lr: f64) -> Vec<Action> {
        let Some(latest) = history.last() else {
            return Vec::new();
        };
        let improved = self.best.update(latest);
        let epoch = EpochEnd {
            history,
            lr,
            improved,
        };
        self.callbacks
            .iter_mut()
            .flat_map(|cb| cb.on_epoch_end(&epoch))
            .collect()
    }

    /// Every callback's actions at the end of training.
    pub fn on_train_end(&mut self) -> Vec<Action> {
        self.callbacks
            .iter_mut()
            .flat_map(|cb| cb.on_train_end())
            .collect()
    }

    /// The tracker's and every callback's state.
    pub fn states(&self) -> (BestTracker, CallbackStates) {
        let states = self
            .callbacks
            .iter()
            .map(|cb| (cb.name().to_string(), cb.state()))
            .collect();
        (self.best.clone(), states)
    }

    /// Puts back states from [`CallbackList::states`]; the error names a callback whose
    /// state is missing or unreadable.
    pub fn load_states(
        &mut self,
        best: BestTracker,
        states: &CallbackStates,
    ) -> std::result::Result<(), CheckpointError> {
        self.best = best;
        for cb in &mut self.callbacks {
            let name = cb.name().to_string();
            let state = states.get(&name).ok_or_else(|| CheckpointError::Missing {
                name: format!("state for the {name} callback"),
            })?;
            cb.load_state(state.clone())
                .map_err(|cause| CheckpointError::CallbackState { name, cause })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::test_support::history_of;
    use crate::callback::EarlyStoppingConfig;

    fn config(patience: usize) -> TrainConfig {
        TrainConfig {
            early_stopping: EarlyStoppingConfig {
                patience,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn keras_order_best_checkpoint_then_early_stopping_then_reduce_lr() {
        let mut list = CallbackList::from_config(&config(2), true).unwrap();
        let losses = [1.0, 1.0, 1.0];
        let got: Vec<Vec<Action>> = (1..=losses.len())
            .map(|n| list.on_epoch_end(&history_of(&losses[..n]), 1e-3))
            .collect();
        assert_eq!(got[0], [Action::SaveBest, Action::SnapshotBest]);
        assert_eq!(got[1], []);
        // Epoch 3: early stopping's patience (2) and ReduceLROnPlateau's (2) run out together.
        assert_eq!(got[2][..2], [Action::Stop, Action::RestoreBest]);
        assert!(matches!(got[2][2], Action::SetLr(lr) if (lr - 1e-4).abs() < 1e-9));
        assert_eq!(list.best().best_epoch(), 1);
    }

    #[test]
    fn states_round_trip_and_a_missing_one_is_named() {
        let mut list = CallbackList::from_config(&config(3), true).unwrap();
        list.on_epoch_end(&history_of(&[1.0]), 1e-3);
        list.on_epoch_end(&history_of(&[1.0, 2.0]), 1e-3);
        let (best, states) = list.states();
        let mut fresh = CallbackList::from_config(&config(3), true).unwrap();
        fresh.load_states(best.clone(), &states).unwrap();
        // Restored mid-wait: one more non-improving epoch is the second of three.
        let next = history_of(&[1.0, 2.0, 2.0]);
        assert_eq!(
            fresh.on_epoch_end(&next, 1e-3),
            list.on_epoch_end(&next, 1e-3)
        );
        let mut partial = states.clone();
        partial.remove("early_stopping");
        let err = fresh.load_states(best, &partial).unwrap_err().to_string();
        assert!(err.contains("early_stopping"), "{err}");
    }
}

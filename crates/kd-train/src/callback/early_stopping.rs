//! Early stopping with Keras 2.4 semantics (`tf.keras.callbacks.EarlyStopping`, the version
//! the seed notebook ran):
//!
//! ```python
//! if monitor_op(current - min_delta, best):          # improvement
//!     best = current; wait = 0
//!     if restore_best_weights: best_weights = model.get_weights()
//! else:
//!     wait += 1
//!     if wait >= patience:
//!         stopped_epoch = epoch; model.stop_training = True
//!         if restore_best_weights: model.set_weights(best_weights)
//! ```
//!
//! Weights are restored only when training is stopped early, as in Keras 2.4; set
//! `restore_at_end` to also restore them when the epoch budget runs out first.

use serde::{Deserialize, Serialize};

use super::{Action, Callback, EpochEnd, Monitor};
use crate::error::{Result, TrainError};

/// Settings of [`EarlyStopping`]; defaults are the seed's
/// `EarlyStopping(patience=5, min_delta=1e-4, restore_best_weights=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// Whether training stops early at all.
    pub enabled: bool,
    /// The metric watched, by name.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights when stopping early (Keras' `restore_best_weights`).
    pub restore_best_weights: bool,
    /// Also restore the best weights when training ends without stopping early.
    pub restore_at_end: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            monitor: Monitor::val_loss(),
            patience: 5,
            min_delta: 1e-4,
            restore_best_weights: true,
            restore_at_end: false,
        }
    }
}

impl EarlyStoppingConfig {
    /// Checks ranges and builds the callback; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<EarlyStopping> {
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite()) {
            return Err(TrainError::InvalidConfig {
                key: format!("{key}.min_delta"),
                expected: "a finite value >= 0".into(),
                got: self.min_delta.to_string(),
            });
        }
        Ok(EarlyStopping {
            config: self.clone(),
            wait: 0,
            stopped_epoch: None,
        })
    }
}

/// Stops training when the monitored metric stops improving (see module docs); whether an
/// epoch improved is the callback list's [`BestTracker`](super::BestTracker) verdict, built
/// from this config's `monitor` and `min_delta`. Its state serializes, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    wait: usize,
    stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// The 1-based epoch at which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &'static str {
        "early_stopping"
    }

    fn on_epoch_end(&mut self, epoch: &EpochEnd) -> Vec<Action> {
        let Some(m) = epoch.history.last() else {
            return Vec::new();
        };
        let c = &self.config;
        if epoch.improved {
            self.wait = 0;
            return if c.restore_best_weights {
                vec![Action::SnapshotBest]
            } else {
                Vec::new()
            };
        }
        self.wait += 1;
        if self.wait < c.patience {
            return Vec::new();
        }
        self.stopped_epoch = Some(m.epoch);
        let mut actions = vec![Action::Stop];
        if c.restore_best_weights {
            actions.push(Action::RestoreBest);
        }
        actions
    }

    /// Restores the best weights if `restore_at_end` asks for it and training was not
    /// already stopped (and restored) early.
    fn on_train_end(&mut self) -> Vec<Action> {
        let c = &self.config;
        if c.restore_best_weights && c.restore_at_end && self.stopped_epoch.is_none() {
            vec![Action::RestoreBest]
        } else {
            Vec::new()
        }
    }

    super::state_is_self!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::test_support::drive;
    use crate::callback::BestTracker;

    /// Runs the callback over `val_losses` and returns the actions of each epoch.
    fn decisions(config: EarlyStoppingConfig, val_losses: &[f64]) -> Vec<Vec<Action>> {
        let best = BestTracker::new(config.monitor.clone(), config.min_delta);
        let mut es = config.build("early_stopping").unwrap();
        drive(&mut es, best, 1e-3, val_losses)
            .into_iter()
            .map(|(actions, _)| actions)
            .collect()
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement_and_restores() {
        // Keras 2.4, patience 2: epoch 1 and 2 improve (snapshot), 3 and 4 do not
        // (wait 1, wait 2 >= patience -> stop and restore at epoch 4).
        let cfg = EarlyStoppingConfig {
            patience: 2,
            ..Default::default()
        };
        let got = decisions(cfg, &[1.0, 0.9, 0.95, 0.91, 0.5]);
        assert_eq!(got[0], vec![Action::SnapshotBest]);
        assert_eq!(got[1], vec![Action::SnapshotBest]);
        assert_eq!(got[2], vec![]);
        assert_eq!(got[3], vec![Action::Stop, Action::RestoreBest]);
    }

    #[test]
    fn improvements_smaller_than_min_delta_do_not_count() {
        // best 1.0; 0.99995 is not below 1.0 - 1e-4, so it is a non-improvement even though
        // it is lower; 0.9 then improves and resets the wait.
        let cfg = EarlyStoppingConfig {
            patience: 2,
            ..Default::default()
        };
        let got = decisions(cfg, &[1.0, 0.99995, 0.9, 0.9, 0.9]);
        assert_eq!(got[1], vec![]);
        assert_eq!(got[2], vec![Action::SnapshotBest]);
        assert_eq!(got[3], vec![]);
        assert_eq!(got[4], vec![Action::Stop, Action::RestoreBest]);
    }

    #[test]
    fn without_restore_only_stops() {
        let cfg = EarlyStoppingConfig {
            patience: 1,
            restore_best_weights: false,
            ..Default::default()
        };
        let got = decisions(cfg, &[1.0, 1.0]);
        assert_eq!(got, vec![vec![], vec![Action::Stop]]);
    }

    #[test]
    fn restore_at_end_only_when_not_stopped() {
        let cfg = EarlyStoppingConfig {
            patience: 3,
            restore_at_end: true,
            ..Default::default()
        };
        let mut es = cfg.build("es").unwrap();
        drive(
            &mut es,
            BestTracker::new(cfg.monitor.clone(), 0.0),
            1e-3,
            &[1.0, 0.8, 0.85],
        );
        assert_eq!(es.on_train_end(), vec![Action::RestoreBest]);
        let mut stopped = EarlyStoppingConfig {
            patience: 1,
            ..cfg.clone()
        }
        .build("es")
        .unwrap();
        drive(
            &mut stopped,
            BestTracker::new(cfg.monitor.clone(), 0.0),
            1e-3,
            &[1.0, 1.5],
        );
        assert_eq!(stopped.stopped_epoch(), Some(2));
        assert_eq!(
            stopped.on_train_end(),
            vec![],
            "restored on stopping already"
        );
    }

    #[test]
    fn negative_min_delta_is_rejected() {
        let cfg = EarlyStoppingConfig {
            min_delta: -1.0,
            ..Default::default()
        };
        let err = cfg.build("teacher.train.early_stopping").unwrap_err();
        assert!(err
            .to_string()
            .contains("teacher.train.early_stopping.min_delta"));
    }
}

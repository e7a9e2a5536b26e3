//! Keras-style callbacks, kept as a [`CallbackList`]: after each epoch every callback looks
//! at the history and returns [`Action`]s, and at the end of training it may return more;
//! the loop carries them out, so no callback reaches into the loop. What "best" means (the
//! monitored metric and its `min_delta`) is decided once, by the list's [`BestTracker`], and
//! every callback that cares reads the verdict.

pub mod best;
pub mod best_checkpoint;
pub mod early_stopping;
pub mod list;
pub mod monitor;
pub mod reduce_lr;

use crate::metrics::History;

pub use best::BestTracker;
pub use best_checkpoint::BestCheckpoint;
pub use early_stopping::{EarlyStopping, EarlyStoppingConfig};
pub use list::CallbackList;
pub use monitor::Monitor;
pub use reduce_lr::{ReduceLrConfig, ReduceLrOnPlateau};

/// [`Callback`]'s state methods for a callback whose whole value is its state.
macro_rules! state_is_self {
    () => {
        fn state(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("a callback's state serializes")
        }

        fn load_state(&mut self, state: serde_json::Value) -> serde_json::Result<()> {
            *self = serde_json::from_value(state)?;
            Ok(())
        }
    };
}
pub(crate) use state_is_self;

/// What a callback asks the loop to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// End training after this epoch.
    Stop,
    /// Use this learning rate from the next epoch on.
    SetLr(f64),
    /// Keep a copy of the current weights as the best so far.
    SnapshotBest,
    /// Put the best weights kept so far back into the model.
    RestoreBest,
    /// Write the current weights as the best checkpoint.
    SaveBest,
}

/// What a callback sees at the end of an epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochEnd<'a> {
    /// Every epoch so far, the one just ended last.
    pub history: &'a History,
    /// The learning rate in use.
    pub lr: f64,
    /// Whether the epoch just ended is the best so far ([`BestTracker`]).
    pub improved: bool,
}

/// Reacts to the end of each epoch and of training. Its state (what it has counted so far)
/// goes into checkpoints as JSON under its [`Callback::name`].
pub trait Callback: std::fmt::Debug {
    /// A stable name: the key of its state in a checkpoint.
    fn name(&self) -> &'static str;

    /// Decides on the epoch just ended.
    fn on_epoch_end(&mut self, epoch: &EpochEnd) -> Vec<Action>;

    /// Decides once training is over (the epoch budget ran out or a callback stopped it).
    fn on_train_end(&mut self) -> Vec<Action> {
        Vec::new()
    }

    /// Its state, for a checkpoint.
    fn state(&self) -> serde_json::Value;

    /// Puts back a state that [`Callback::state`] gave.
    fn load_state(&mut self, state: serde_json::Value) -> serde_json::Result<()>;
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Action, BestTracker, Callback, EpochEnd};
    use crate::metrics::{EpochMetrics, History};

    /// A history whose epochs have the given validation losses (other metrics zero).
    pub(crate) fn history_of(val_losses: &[f64]) -> History {
        History {
            epochs: val_losses
                .iter()
                .enumerate()
                .map(|(i, &v)| EpochMetrics {
                    epoch: i + 1,
                    loss: v,
                    accuracy: 0.0,
                    val_loss: v,
                    val_accuracy: 0.0,
                    val_cross_entropy: v,
                    lr: 0.0,
                    parts: Vec::new(),
                    seconds: 0.0,
                    train_images_per_s: 0.0,
                    metrics: Vec::new(),
                })
                .collect(),
        }
    }

    /// Runs `callback` over epochs with `val_losses`, `best` deciding improvements and
    /// `lr` changed by its `SetLr` actions; returns each epoch's actions.
    pub(crate) fn drive(
        callback: &mut dyn Callback,
        mut best: BestTracker,
        mut lr: f64,
        val_losses: &[f64],
    ) -> Vec<(Vec<Action>, f64)> {
        (1..=val_losses.len())
            .map(|n| {
                let history = history_of(&val_losses[..n]);
                let improved = best.update(history.last().expect("an epoch"));
                let actions = callback.on_epoch_end(&EpochEnd {
                    history: &history,
                    lr,
                    improved,
                });
                for a in &actions {
                    if let Action::SetLr(new) = a {
                        lr = *new;
                    }
                }
                (actions, lr)
            })
            .collect()
    }
}

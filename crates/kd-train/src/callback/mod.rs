//! Keras-style callbacks. A callback looks at the history after each epoch and returns
//! actions; the trainer carries them out, so no callback reaches into the loop.

pub mod early_stopping;
pub mod monitor;
pub mod reduce_lr;

use crate::metrics::History;

pub use early_stopping::{EarlyStopping, EarlyStoppingConfig};
pub use monitor::Monitor;
pub use reduce_lr::{ReduceLrConfig, ReduceLrOnPlateau};

/// What a callback asks the trainer to do.
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
}

/// Reacts to the end of an epoch.
pub trait Callback: std::fmt::Debug {
    /// Decides on the latest epoch of `history`; `lr` is the learning rate in use.
    fn on_epoch_end(&mut self, history: &History, lr: f64) -> Vec<Action>;
}

#[cfg(test)]
pub(crate) mod test_support {
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
                })
                .collect(),
        }
    }
}

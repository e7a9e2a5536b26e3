//! Keras' `ModelCheckpoint(save_best_only=True)`: writes the model whenever an epoch is the
//! best so far by the list's [`BestTracker`](super::BestTracker) — the weights early stopping
//! would restore. Written before any restore of the same epoch changes the model.

use super::{Action, Callback, EpochEnd};

/// Asks for the best checkpoint on every improvement. It has no state of its own.
#[derive(Debug, Clone, Default)]
pub struct BestCheckpoint;

impl Callback for BestCheckpoint {
    fn name(&self) -> &'static str {
        "best_checkpoint"
    }

    fn on_epoch_end(&mut self, epoch: &EpochEnd) -> Vec<Action> {
        if epoch.improved {
            vec![Action::SaveBest]
        } else {
            Vec::new()
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn load_state(&mut self, _state: serde_json::Value) -> serde_json::Result<()> {
        Ok(())
    }
}

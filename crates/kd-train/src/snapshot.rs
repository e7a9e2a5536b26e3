//! Copies of a model's weights kept in memory: the best epoch's, for early stopping's
//! `restore_best_weights`.

use std::collections::HashMap;

use kd_models::Network;
use tch::Tensor;

/// Deep copies of a model's variables (parameters and buffers) by name.
pub(crate) type Snapshot = HashMap<String, Tensor>;

/// A deep copy of every variable of `model`.
pub(crate) fn snapshot(model: &dyn Network) -> Snapshot {
    tch::no_grad(|| {
        model
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect()
    })
}

/// Copies `snap` back into `model`'s variables.
pub(crate) fn restore(model: &dyn Network, snap: &Snapshot) {
    tch::no_grad(|| {
        for (name, mut t) in model.var_store().variables() {
            t.copy_(&snap[&name]);
        }
    });
}

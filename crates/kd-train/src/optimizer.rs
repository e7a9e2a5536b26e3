//! Adam (Kingma & Ba 2015) over a model's trainable variables, with its state open to
//! checkpoints: the step is libtorch's C++ `torch::optim::Adam` through `kd_sys::adam_step`
//! (bitwise the optimizer tch's `nn::Adam` wraps, whose state tch keeps private), or — once
//! [`Adam::capturable`] has moved the state to the device for CUDA graphs — PyTorch's
//! capturable form through `kd_sys::CapturableAdam`.

use std::collections::BTreeMap;

use kd_sys::{adam_step, AdamConfig, AdamState, CapturableAdam};
use tch::nn::VarStore;
use tch::Tensor;

use crate::error::{CheckpointError, Result, TrainError};

/// Adam over named parameters.
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    /// The state while it is on the host (stale once `device` holds it).
    state: Vec<AdamState>,
    /// The state on the device, once a graphed step asked for it.
    device: Option<CapturableAdam>,
}

impl Adam {
    /// Adam over the trainable variables of `vs` (those that require gradients), with
    /// learning rate `lr` and L2 weight decay `weight_decay`.
    pub fn new(vs: &VarStore, lr: f64, weight_decay: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let state = params.iter().map(|_| AdamState::default()).collect();
        Self {
            config: AdamConfig {
                lr,
                weight_decay,
                ..Default::default()
            },
            names,
            params,
            state,
            device: None,
        }
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate of the next steps (the device state's too).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
        if let Some(device) = self.device.as_mut() {
            device.set_lr(lr);
        }
    }

    /// The state on the device, in PyTorch's capturable form (moved there on first use):
    /// from here on every step, the eager ones included, takes that form.
    pub fn capturable(&mut self) -> &CapturableAdam {
        self.device
            .get_or_insert_with(|| CapturableAdam::new(&self.params, &self.state, &self.config))
    }

    /// Its hyperparameters (the learning rate of the next step among them).
    pub(crate) fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The state on the host, one entry per parameter in name order; `None` once a graphed
    /// step moved it to the device.
    pub(crate) fn host_state_mut(&mut self) -> Option<&mut [AdamState]> {
        self.device.is_none().then_some(self.state.as_mut_slice())
    }

    /// The names of the parameters it updates, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters it updates, in name order.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One step with the gradients in place.
    pub fn step(&mut self) -> Result<()> {
        match &self.device {
            Some(device) => device.step(&self.params, None),
            None => adam_step(&self.params, &mut self.state, &self.config),
        }
        .map_err(|cause| TrainError::Optimizer { cause })
    }

    /// Clears the gradients, back-propagates `loss`, steps.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.backward(loss);
        self.step()
    }

    /// Clears the gradients and back-propagates `loss` (no step).
    pub fn backward(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
    }

    /// The state to checkpoint: the moments by `exp_avg/<name>` and `exp_avg_sq/<name>`
    /// (parameters that have stepped), and every parameter's step count by name.
    pub fn state(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, i64>) {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        let from_device = self.device.as_ref().map(CapturableAdam::state);
        for (name, s) in self
            .names
            .iter()
            .zip(from_device.as_ref().unwrap_or(&self.state))
        {
            steps.insert(name.clone(), s.step);
            if s.exp_avg.defined() {
                tensors.push((format!("exp_avg/{name}"), s.exp_avg.shallow_clone()));
                tensors.push((format!("exp_avg_sq/{name}"), s.exp_avg_sq.shallow_clone()));
            }
        }
        (tensors, steps)
    }

    /// Restores a [`Adam::state`]: `tensors` by the same names, `steps` for every parameter.
    /// The moments are copied into tensors laid out like their parameters, as libtorch
    /// allocates them. Fails, naming the tensor, on anything missing or mis-shaped.
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        steps: &BTreeMap<String, i64>,
    ) -> std::result::Result<(), CheckpointError> {
        // The restored state is the host's; a graphed step moves it again.
        self.device = None;
        let missing = |name: String| CheckpointError::Missing {
            name: format!("optimizer state {name}"),
        };
        for ((name, p), s) in self.names.iter().zip(&self.params).zip(&mut self.state) {
            let step = *steps
                .get(name)
                .ok_or_else(|| missing(format!("step count for {name}")))?;
            if step == 0 {
                *s = AdamState::default();
                continue;
            }
            let moment = |kind: &str| -> std::result::Result<Tensor, CheckpointError> {
                let key = format!("{kind}/{name}");
                let saved = tensors.get(&key).ok_or_else(|| missing(key.clone()))?;
                if saved.size() != p.size() {
                    return Err(CheckpointError::Shape {
                        name: format!("optimizer state {key}"),
                        found: saved.size(),
                        expected: p.size(),
                    });
                }
                let mut t = p.detach().zeros_like();
                tch::no_grad(|| t.copy_(saved));
                Ok(t)
            };
            *s = AdamState {
                exp_avg: moment("exp_avg")?,
                exp_avg_sq: moment("exp_avg_sq")?,
                step,
            };
        }
        Ok(())
    }
}

//! Adam (Kingma & Ba 2015) in the capturable form of PyTorch's `Adam(capturable=True)`:
//! the learning rate and the step counts are tensors on the parameters' device and the bias
//! corrections are computed there, so a CUDA graph can capture a step once and replay it as
//! the counts grow and the learning rate changes (it is written into the same tensor). A
//! step can be skipped on the device by a flag (a non-finite gradient), without the host
//! reading anything. The state converts to and from [`AdamState`], the form checkpoints
//! keep.

use tch::{Kind, Tensor};

use crate::adam::{AdamConfig, AdamError, AdamState};
use crate::ffi;

/// Adam's state on the device, for the parameters it was made for.
#[derive(Debug)]
pub struct CapturableAdam {
    config: AdamConfig,
    lr: Tensor,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: Vec<Tensor>,
}

impl CapturableAdam {
    /// The device form of `state` (one per parameter of `params`): moments allocated (zeros
    /// where a parameter has not stepped yet, laid out like it), counts as float32 tensors,
    /// the learning rate `config.lr`.
    pub fn new(params: &[Tensor], state: &[AdamState], config: &AdamConfig) -> Self {
        assert_eq!(params.len(), state.len(), "one state per parameter");
        let moment = |p: &Tensor, saved: &Tensor| {
            if saved.defined() {
                saved.detach().copy()
            } else {
                p.detach().zeros_like()
            }
        };
        let device = params.first().map_or(tch::Device::Cpu, Tensor::device);
        Self {
            config: *config,
            lr: Tensor::from(config.lr as f32).to_device(device),
            exp_avg: params
                .iter()
                .zip(state)
                .map(|(p, s)| moment(p, &s.exp_avg))
                .collect(),
            exp_avg_sq: params
                .iter()
                .zip(state)
                .map(|(p, s)| moment(p, &s.exp_avg_sq))
                .collect(),
            steps: params
                .iter()
                .zip(state)
                .map(|(p, s)| Tensor::from(s.step as f32).to_device(p.device()))
                .collect(),
        }
    }

    /// Sets the learning rate of the next steps, in place (a captured step sees it).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
        tch::no_grad(|| {
            let _ = self.lr.fill_(lr);
        });
    }

    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// One step over `params` (the parameters it was made for, each with a gradient);
    /// where `skip` is given and non-zero on the device, nothing changes.
    pub fn step(&self, params: &[Tensor], skip: Option<&Tensor>) -> Result<(), AdamError> {
        assert_eq!(params.len(), self.steps.len(), "one state per parameter");
        let none = Tensor::new();
        ffi::adam_step_capturable(
            params,
            &self.exp_avg,
            &self.exp_avg_sq,
            &self.steps,
            &self.lr,
            skip.unwrap_or(&none),
            ffi::AdamHyper {
                lr: self.config.lr,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: self.config.weight_decay,
            },
        )
        .map_err(AdamError::new)
    }

    /// The host form (reads the counts from the device): a parameter that never stepped
    /// has undefined moments, as [`crate::adam_step`] keeps it.
    pub fn state(&self) -> Vec<AdamState> {
        self.exp_avg
            .iter()
            .zip(&self.exp_avg_sq)
            .zip(&self.steps)
            .map(|((m, v), step)| {
                let step = step.to_kind(Kind::Double).double_value(&[]).round() as i64;
                if step == 0 {
                    AdamState::default()
                } else {
                    AdamState {
                        exp_avg: m.copy(),
                        exp_avg_sq: v.copy(),
                        step,
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam_step;
    use tch::Device;

    fn close(a: &Tensor, b: &Tensor) -> bool {
        a.allclose(b, 1e-5, 1e-7, false)
    }

    /// A quadratic bowl with per-step random targets: the same gradients for both forms.
    fn grads(params: &[Tensor], step: i64) {
        for (i, p) in params.iter().enumerate() {
            let mut g = p.grad();
            if !g.defined() {
                (p.sum(Kind::Float) * 0.0).backward();
                g = p.grad();
            }
            let target =
                Tensor::from_slice(&[0.1 * step as f32 - 0.3 * i as f32]).expand(p.size(), true);
            tch::no_grad(|| {
                g.copy_(&((p.detach() - target) * 2.0 + 0.01 * ((step + i as i64) % 3) as f64))
            });
        }
    }

    fn params() -> Vec<Tensor> {
        vec![
            Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25])
                .reshape([2, 2])
                .set_requires_grad(true),
            Tensor::from_slice(&[3.0f32, -0.75]).set_requires_grad(true),
        ]
    }

    /// The capturable form takes the same steps as libtorch's Adam ([`adam_step`], itself
    /// bitwise `torch.optim.Adam`) to float rounding: 30 steps, a learning-rate change at
    /// step 12, with and without weight decay; and round-trips through the host state.
    #[test]
    fn takes_the_steps_of_libtorch_adam_to_rounding() {
        for weight_decay in [0.0, 1e-2] {
            let mut config = AdamConfig {
                lr: 1e-2,
                weight_decay,
                ..Default::default()
            };
            let (eager, device) = (params(), params());
            let mut eager_state: Vec<AdamState> =
                eager.iter().map(|_| AdamState::default()).collect();
            let mut capturable = CapturableAdam::new(
                &device,
                &device
                    .iter()
                    .map(|_| AdamState::default())
                    .collect::<Vec<_>>(),
                &config,
            );
            for step in 0..30 {
                if step == 12 {
                    config.lr = 3e-3;
                    capturable.set_lr(3e-3);
                }
                grads(&eager, step);
                grads(&device, step);
                adam_step(&eager, &mut eager_state, &config).unwrap();
                capturable.step(&device, None).unwrap();
            }
            for (e, d) in eager.iter().zip(&device) {
                assert!(close(e, d), "{e:?} vs {d:?} (weight decay {weight_decay})");
            }
            let state = capturable.state();
            for (e, d) in eager_state.iter().zip(&state) {
                assert_eq!(e.step, d.step);
                assert!(close(&e.exp_avg, &d.exp_avg) && close(&e.exp_avg_sq, &d.exp_avg_sq));
            }
            // Resuming from the host state continues the same trajectory.
            let resumed = CapturableAdam::new(&device, &state, &config);
            let twin: Vec<Tensor> = device.iter().map(|p| p.detach().copy()).collect();
            let twin: Vec<Tensor> = twin
                .into_iter()
                .map(|t| t.set_requires_grad(true))
                .collect();
            grads(&device, 30);
            grads(&twin, 30);
            capturable.step(&device, None).unwrap();
            resumed.step(&twin, None).unwrap();
            for (a, b) in device.iter().zip(&twin) {
                assert!(a.equal(b), "resumed step differs");
            }
        }
    }

    /// A step flagged on the device changes nothing, bit for bit; a zero flag is a step.
    #[test]
    fn a_flagged_step_changes_nothing_and_an_unflagged_one_steps() {
        let config = AdamConfig::default();
        let p = params();
        let adam = CapturableAdam::new(&p, &[AdamState::default(), AdamState::default()], &config);
        grads(&p, 0);
        adam.step(&p, None).unwrap();
        let before: Vec<Tensor> = p.iter().map(|t| t.detach().copy()).collect();
        let state_before = adam.state();
        grads(&p, 1);
        let skip = Tensor::from(1.0f32).to_device(Device::Cpu);
        adam.step(&p, Some(&skip)).unwrap();
        for (a, b) in p.iter().zip(&before) {
            assert!(a.equal(b), "a skipped step moved a parameter");
        }
        let state_after = adam.state();
        for (a, b) in state_before.iter().zip(&state_after) {
            assert_eq!(a.step, b.step);
            assert!(a.exp_avg.equal(&b.exp_avg) && a.exp_avg_sq.equal(&b.exp_avg_sq));
        }
        // The same flag at zero: the step is taken, as an unguarded step takes it.
        let twin: Vec<Tensor> = p
            .iter()
            .map(|t| t.detach().copy().set_requires_grad(true))
            .collect();
        let twin_adam = CapturableAdam::new(&twin, &state_after, &config);
        grads(&p, 1);
        grads(&twin, 1);
        adam.step(&p, Some(&skip.zeros_like())).unwrap();
        twin_adam.step(&twin, None).unwrap();
        for ((a, b), old) in p.iter().zip(&twin).zip(&before) {
            assert!(!a.equal(old) && close(a, b));
        }
        assert_eq!(adam.state()[0].step, 2);
    }

    #[test]
    fn a_parameter_without_a_gradient_is_an_error_naming_it() {
        let p = params();
        let adam = CapturableAdam::new(
            &p,
            &[AdamState::default(), AdamState::default()],
            &AdamConfig::default(),
        );
        let err = adam.step(&p, None).unwrap_err().to_string();
        assert!(err.contains("parameter 0 has no gradient"), "{err}");
    }
}

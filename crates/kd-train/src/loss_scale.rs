//! Dynamic loss scaling for float16 mixed precision (Micikevicius et al. 2018, "Mixed
//! Precision Training", section 3.2), with the defaults and rules of PyTorch's
//! `torch.amp.GradScaler`: the loss is multiplied by a scale (initially 2^16) before the
//! backward pass so that small float16 gradients do not flush to zero; the gradients are
//! divided by it again before the optimizer step; a step whose gradients hold an infinity or
//! a NaN is skipped and the scale halved; after 2,000 good steps in a row the scale doubles.
//! bfloat16 has float32's exponent range and needs none of this.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::Result;

/// The scaler's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    scale: f64,
    good_steps: usize,
    skipped: usize,
}

/// PyTorch's `GradScaler(init_scale=2.**16)`.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Good steps before the scale doubles (PyTorch's `growth_interval`).
pub const GROWTH_INTERVAL: usize = 2000;

impl Default for LossScaler {
    fn default() -> Self {
        Self {
            scale: INITIAL_SCALE,
            good_steps: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Steps skipped so far because of non-finite gradients.
    pub fn skipped_steps(&self) -> usize {
        self.skipped
    }

    /// One optimizer step on `loss` for the parameters `vars`: their gradients are cleared,
    /// the scaled loss back-propagated and the gradients unscaled; then `step` runs, or not if
    /// a gradient is not finite. Returns whether the step was taken. Reads one value from the
    /// device.
    pub fn backward_step(
        &mut self,
        vars: &mut [Tensor],
        loss: &Tensor,
        step: impl FnOnce() -> Result<()>,
    ) -> Result<bool> {
        for var in vars.iter_mut() {
            var.zero_grad();
        }
        (loss * self.scale).backward();
        let finite = tch::no_grad(|| {
            for var in vars.iter() {
                let mut grad = var.grad();
                if grad.defined() {
                    let _ = grad.g_mul_scalar_(1.0 / self.scale);
                }
            }
            crate::nonfinite::all_finite(&vars.iter().map(Tensor::grad).collect::<Vec<_>>())
        });
        if finite {
            step()?;
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
            self.skipped += 1;
        }
        Ok(finite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Optimizer, OptimizerConfig};
    use tch::{Device, Kind};

    fn sgd_on(values: &[f32]) -> (nn::VarStore, Tensor, Optimizer) {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(values));
        let opt = nn::Sgd::default().build(&vs, 0.1).unwrap();
        (vs, w, opt)
    }

    #[test]
    fn gradients_are_unscaled_before_the_step() {
        let (_vs, w, mut opt) = sgd_on(&[1.0, -2.0]);
        let mut scaler = LossScaler::default();
        // d/dw sum(w^2) = 2w; SGD with lr 0.1: w - 0.2 w = 0.8 w, whatever the scale.
        let loss = (&w * &w).sum(Kind::Float);
        assert!(scaler
            .backward_step(&mut [w.shallow_clone()], &loss, || {
                opt.step();
                Ok(())
            })
            .unwrap());
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert_eq!(got, vec![0.8, -1.6]);
        assert_eq!(scaler.scale(), INITIAL_SCALE);
    }

    #[test]
    fn an_overflowing_step_is_skipped_and_halves_the_scale() {
        let (_vs, w, mut opt) = sgd_on(&[1.0, 1.0]);
        let mut scaler = LossScaler::default();
        // 1e35 * 65536 overflows float32: the gradient is infinite after scaling.
        let loss = w.sum(Kind::Float) * 1e35;
        assert!(!scaler
            .backward_step(&mut [w.shallow_clone()], &loss, || {
                opt.step();
                Ok(())
            })
            .unwrap());
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![1.0, 1.0]);
        assert_eq!(
            (scaler.scale(), scaler.skipped_steps()),
            (INITIAL_SCALE / 2.0, 1)
        );
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval() {
        let (_vs, w, mut opt) = sgd_on(&[0.5]);
        let mut scaler = LossScaler::default();
        for _ in 0..GROWTH_INTERVAL {
            let loss = w.sum(Kind::Float) * 1e-6;
            assert!(scaler
                .backward_step(&mut [w.shallow_clone()], &loss, || {
                    opt.step();
                    Ok(())
                })
                .unwrap());
        }
        assert_eq!(scaler.scale(), 2.0 * INITIAL_SCALE);
    }
}

//! Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization") with its state in
//! the caller's hands, so that a checkpoint can save and restore it. The step is libtorch's
//! C++ `torch::optim::Adam`, operation for operation (see `src/shim.cpp`), so a run with this
//! optimizer is bitwise the run with tch's `nn::Adam`, whose state tch does not expose.

use tch::Tensor;

use crate::ffi;

/// Adam's step failed in libtorch (a device or shape mismatch between a parameter and its
/// state, say).
#[derive(Debug, thiserror::Error)]
#[error("Adam step: {0}")]
pub struct AdamError(String);

impl AdamError {
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

/// Adam's hyperparameters; defaults are PyTorch's (`betas=(0.9, 0.999)`, `eps=1e-8`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 penalty added to the gradient (Adam's, not AdamW's decoupled decay).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The per-parameter state: first and second moment (undefined tensors before the first
/// step) and the step count.
#[derive(Debug)]
pub struct AdamState {
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub step: i64,
}

impl Default for AdamState {
    fn default() -> Self {
        Self {
            exp_avg: Tensor::new(),
            exp_avg_sq: Tensor::new(),
            step: 0,
        }
    }
}

/// One Adam step over `params` (each with its gradient), updating `state` (one entry per
/// parameter). Runs without recording gradients.
pub fn adam_step(
    params: &[Tensor],
    state: &mut [AdamState],
    config: &AdamConfig,
) -> Result<(), AdamError> {
    assert_eq!(params.len(), state.len(), "one state per parameter");
    // The shim takes parallel arrays; the state tensors move out and back.
    let mut m: Vec<Tensor> = Vec::with_capacity(state.len());
    let mut v: Vec<Tensor> = Vec::with_capacity(state.len());
    let mut steps: Vec<i64> = Vec::with_capacity(state.len());
    for s in state.iter_mut() {
        m.push(std::mem::replace(&mut s.exp_avg, Tensor::new()));
        v.push(std::mem::replace(&mut s.exp_avg_sq, Tensor::new()));
        steps.push(s.step);
    }
    let result = ffi::adam_step(
        params,
        &mut m,
        &mut v,
        &mut steps,
        ffi::AdamHyper {
            lr: config.lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
        },
    );
    for ((s, m), (v, step)) in state.iter_mut().zip(m).zip(v.into_iter().zip(steps)) {
        s.exp_avg = m;
        s.exp_avg_sq = v;
        s.step = step;
    }
    result.map_err(AdamError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::{Device, Kind};

    /// Two identical two-layer networks, one per optimizer.
    fn twin_networks(seed: i64) -> [(nn::VarStore, nn::Sequential); 2] {
        let build = || {
            tch::manual_seed(seed);
            let vs = nn::VarStore::new(Device::Cpu);
            let p = vs.root();
            let net = nn::seq()
                .add(nn::linear(&p / "a", 6, 8, Default::default()))
                .add_fn(|x| x.tanh())
                .add(nn::linear(&p / "b", 8, 3, Default::default()));
            (vs, net)
        };
        [build(), build()]
    }

    /// Trainable variables in name order.
    fn params(vs: &nn::VarStore) -> Vec<Tensor> {
        let mut named: Vec<_> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.into_iter().map(|(_, t)| t).collect()
    }

    /// tch's `nn::Adam` (libtorch's C++ optimizer) and [`adam_step`] take the same steps,
    /// including learning-rate changes, to the last bit.
    fn bitwise_equal_to_libtorch_adam(weight_decay: f64) {
        let _rng = crate::GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let [(vs_ref, net_ref), (vs, net)] = twin_networks(7);
        let mut reference = nn::Adam {
            wd: weight_decay,
            ..Default::default()
        }
        .build(&vs_ref, 3e-3)
        .unwrap();
        let mut config = AdamConfig {
            lr: 3e-3,
            weight_decay,
            ..Default::default()
        };
        let mut ours = params(&vs);
        let mut state: Vec<AdamState> = ours.iter().map(|_| AdamState::default()).collect();
        tch::manual_seed(11);
        for step in 0..25 {
            if step == 10 {
                reference.set_lr(3e-4);
                config.lr = 3e-4;
            }
            let x = Tensor::randn([16, 6], (Kind::Float, Device::Cpu));
            let y = Tensor::randint(3, [16], (Kind::Int64, Device::Cpu));
            reference.backward_step(&net_ref.forward(&x).cross_entropy_for_logits(&y));
            for p in ours.iter_mut() {
                p.zero_grad();
            }
            net.forward(&x).cross_entropy_for_logits(&y).backward();
            adam_step(&ours, &mut state, &config).unwrap();
        }
        for (r, o) in params(&vs_ref).iter().zip(&ours) {
            assert!(r.equal(o), "parameters differ after 25 steps");
        }
        assert!(state.iter().all(|s| s.step == 25));
    }

    #[test]
    fn matches_libtorch_adam_bitwise() {
        bitwise_equal_to_libtorch_adam(0.0);
    }

    #[test]
    fn matches_libtorch_adam_bitwise_with_weight_decay() {
        bitwise_equal_to_libtorch_adam(5e-4);
    }

    #[test]
    fn parameters_without_a_gradient_are_skipped() {
        let w = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let idle = Tensor::from_slice(&[5.0f32]).set_requires_grad(true);
        (&w * &w).sum(Kind::Float).backward();
        let mut state = vec![AdamState::default(), AdamState::default()];
        let params = [w.shallow_clone(), idle.shallow_clone()];
        adam_step(&params, &mut state, &AdamConfig::default()).unwrap();
        assert_eq!((state[0].step, state[1].step), (1, 0));
        assert!(!state[1].exp_avg.defined());
        // First Adam step moves each weight by lr against its gradient's sign.
        let moved = Vec::<f32>::try_from(&w).unwrap();
        assert!((moved[0] - 0.999).abs() < 1e-6 && (moved[1] - 1.999).abs() < 1e-6);
        assert_eq!(Vec::<f32>::try_from(&idle).unwrap(), vec![5.0]);
    }
}

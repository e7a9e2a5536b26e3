//! Adam (Kingma & Ba 2015) for a population of students trained as one fused model
//! (horizontally fused training; Wang et al., MLSys 2021): every parameter stacks K members'
//! tensors along its first axis, and each member steps exactly as [`crate::adam_step`] would
//! step its own tensors — libtorch's `torch::optim::Adam` arithmetic on its slice — with its
//! own learning rate, weight decay and step count, or not at all while it is inactive.

use tch::Tensor;

use crate::adam::{AdamConfig, AdamError};
use crate::ffi;

/// One stacked parameter's state: the moments of every member (undefined before the first
/// step) and each member's step count.
#[derive(Debug)]
pub struct MembersAdamState {
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub steps: Vec<i64>,
}

impl MembersAdamState {
    /// The state of a parameter of `members` members that has not stepped.
    pub fn new(members: usize) -> Self {
        Self {
            exp_avg: Tensor::new(),
            exp_avg_sq: Tensor::new(),
            steps: vec![0; members],
        }
    }
}

/// A member's part in a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberStep {
    /// Its learning rate for this step.
    pub lr: f64,
    /// Its L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Whether it steps (an inactive member's slices and counts stay as they are).
    pub active: bool,
}

/// One Adam step of the population: `params` stacked over `members.len()` members (member
/// k's slice of a parameter is `p.chunk(K, 0)[k]`), each with its gradient; `state` one
/// entry per parameter. `config`'s betas and eps are every member's; its learning rate and
/// weight decay are not read (each member's are in `members`).
pub fn adam_step_members(
    params: &[Tensor],
    state: &mut [MembersAdamState],
    members: &[MemberStep],
    config: &AdamConfig,
) -> Result<(), AdamError> {
    assert_eq!(params.len(), state.len(), "one state per parameter");
    let k = members.len();
    assert!(
        state.iter().all(|s| s.steps.len() == k),
        "one step count per member"
    );
    let mut m: Vec<Tensor> = Vec::with_capacity(state.len());
    let mut v: Vec<Tensor> = Vec::with_capacity(state.len());
    let mut steps: Vec<i64> = Vec::with_capacity(state.len() * k);
    for s in state.iter_mut() {
        m.push(std::mem::replace(&mut s.exp_avg, Tensor::new()));
        v.push(std::mem::replace(&mut s.exp_avg_sq, Tensor::new()));
        steps.extend(&s.steps);
    }
    let lr: Vec<f64> = members.iter().map(|s| s.lr).collect();
    let weight_decay: Vec<f64> = members.iter().map(|s| s.weight_decay).collect();
    let active: Vec<u8> = members.iter().map(|s| u8::from(s.active)).collect();
    let hyper = ffi::MemberHyper {
        lr: &lr,
        weight_decay: &weight_decay,
        active: &active,
    };
    let h = ffi::AdamHyper {
        lr: config.lr,
        beta1: config.beta1,
        beta2: config.beta2,
        eps: config.eps,
        weight_decay: config.weight_decay,
    };
    let result = ffi::adam_step_members(params, &mut m, &mut v, &mut steps, hyper, h);
    for (i, (s, (m, v))) in state.iter_mut().zip(m.into_iter().zip(v)).enumerate() {
        s.exp_avg = m;
        s.exp_avg_sq = v;
        s.steps.copy_from_slice(&steps[i * k..(i + 1) * k]);
    }
    result.map_err(AdamError::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::{adam_step, AdamState};
    use tch::{Device, Kind};

    /// Three members with their own learning rates and weight decays, one of them sitting
    /// out two steps, step as three solo Adams on the same gradients, to the last bit.
    #[test]
    fn each_member_steps_as_its_solo_adam_bitwise() {
        let _rng = crate::GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(3);
        let shapes: [&[i64]; 3] = [&[4, 3, 3, 3], &[4], &[10, 4]];
        let hyper = [(3e-3, 0.0), (1e-3, 5e-4), (7e-3, 1e-2)];
        let solo: Vec<Vec<Tensor>> = (0..3)
            .map(|_| {
                shapes
                    .iter()
                    .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(true))
                    .collect()
            })
            .collect();
        let stacked: Vec<Tensor> = (0..shapes.len())
            .map(|i| {
                let parts: Vec<Tensor> = solo.iter().map(|m| m[i].detach().unsqueeze(0)).collect();
                let t = Tensor::cat(&parts, 0).set_requires_grad(true);
                (&t * 0.0).sum(Kind::Float).backward();
                t
            })
            .collect();
        let mut solo_state: Vec<Vec<AdamState>> = (0..3)
            .map(|_| shapes.iter().map(|_| AdamState::default()).collect())
            .collect();
        let mut state: Vec<MembersAdamState> =
            shapes.iter().map(|_| MembersAdamState::new(3)).collect();
        for step in 0..12 {
            let idle = (4..6).contains(&step);
            let mut members = Vec::new();
            for (k, params) in solo.iter().enumerate() {
                for (p, s) in params.iter().zip(&stacked) {
                    let g = Tensor::randn(p.size(), (Kind::Float, Device::Cpu));
                    let mut solo_grad = p.grad();
                    if solo_grad.defined() {
                        solo_grad.copy_(&g);
                    } else {
                        (p * &g).sum(Kind::Float).backward();
                    }
                    s.grad().chunk(3, 0)[k].copy_(&g.unsqueeze(0));
                }
                let (lr, weight_decay) = hyper[k];
                let active = !(k == 1 && idle);
                if active {
                    let config = AdamConfig {
                        lr,
                        weight_decay,
                        ..Default::default()
                    };
                    adam_step(params, &mut solo_state[k], &config).unwrap();
                }
                members.push(MemberStep {
                    lr,
                    weight_decay,
                    active,
                });
            }
            adam_step_members(&stacked, &mut state, &members, &AdamConfig::default()).unwrap();
        }
        for (k, params) in solo.iter().enumerate() {
            for (i, p) in params.iter().enumerate() {
                let slice = stacked[i].chunk(3, 0)[k].squeeze_dim(0);
                assert!(slice.equal(p), "member {k}, parameter {i} differs");
                let m = state[i].exp_avg.chunk(3, 0)[k].squeeze_dim(0);
                assert!(m.equal(&solo_state[k][i].exp_avg));
                assert_eq!(state[i].steps[k], solo_state[k][i].step);
            }
        }
        assert_eq!(state[0].steps, vec![12, 10, 12]);
    }
}

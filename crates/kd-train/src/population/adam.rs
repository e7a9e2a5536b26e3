//! The members' optimizers as one: each member's Adam state stacked along the population's
//! member axis for an epoch of fused steps ([`kd_sys::adam_step_members`]: every member
//! steps as its own Adam would), then handed back to the member's optimizer, so that its
//! checkpoint holds the state a solo fit would hold.

use kd_models::memory_format;
use kd_models::population::StudentPopulation;
use kd_sys::{adam_step_members, AdamConfig, AdamState, MemberStep, MembersAdamState};
use tch::Tensor;

use crate::error::{Result, TrainError};
use crate::optimizer::Adam;

/// Adam over a population's stacked parameters.
pub(crate) struct PopulationAdam {
    /// The parameters' names, in order (the members' optimizers' order).
    names: Vec<String>,
    /// The population's parameters, in name order.
    params: Vec<Tensor>,
    state: Vec<MembersAdamState>,
    config: AdamConfig,
}

impl PopulationAdam {
    /// The members' optimizers' states stacked as `population`'s parameters are.
    pub fn gather(population: &StudentPopulation, members: &mut [&mut Adam]) -> Result<Self> {
        let k = members.len();
        let mut named: Vec<(String, Tensor)> =
            population.var_store().variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let config = *members[0].config();
        let mut state: Vec<MembersAdamState> =
            named.iter().map(|_| MembersAdamState::new(k)).collect();
        for (j, adam) in members.iter_mut().enumerate() {
            if !adam.names().iter().eq(named.iter().map(|(n, _)| n)) {
                return Err(unstackable("a member's optimizer steps other parameters"));
            }
            let host = adam
                .host_state_mut()
                .ok_or_else(|| unstackable("a member's optimizer state is on the device"))?;
            for ((s, (_, p)), solo) in state.iter_mut().zip(&named).zip(host.iter()) {
                s.steps[j] = solo.step;
                if !solo.exp_avg.defined() {
                    continue;
                }
                for (stacked, moment) in [
                    (&mut s.exp_avg, &solo.exp_avg),
                    (&mut s.exp_avg_sq, &solo.exp_avg_sq),
                ] {
                    if !stacked.defined() {
                        *stacked = p.detach().zeros_like();
                    }
                    let mut slice = stacked.chunk(k as i64, 0).swap_remove(j);
                    tch::no_grad(|| slice.copy_(&moment.reshape(slice.size().as_slice())));
                }
            }
        }
        let (names, params) = named.into_iter().unzip();
        Ok(Self {
            names,
            params,
            state,
            config,
        })
    }

    /// The stacked parameters, in name order.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Their names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One step, each member as `members` says.
    pub fn step(&mut self, members: &[MemberStep]) -> Result<()> {
        adam_step_members(&self.params, &mut self.state, members, &self.config)
            .map_err(|cause| TrainError::Optimizer { cause })
    }

    /// Hands each member's state back to its optimizer (`members` in gathering order),
    /// shaped as its own parameters.
    pub fn scatter(self, members: &mut [&mut Adam]) {
        let k = members.len() as i64;
        for (j, adam) in members.iter_mut().enumerate() {
            let shapes: Vec<(Vec<i64>, bool)> = adam
                .params()
                .iter()
                .map(|p| (p.size(), memory_format::is_channels_last(p)))
                .collect();
            let host = adam.host_state_mut().expect("gathered from the host");
            for ((s, (shape, nhwc)), solo) in self.state.iter().zip(&shapes).zip(host.iter_mut()) {
                let step = s.steps[j];
                if step == 0 || !s.exp_avg.defined() {
                    continue;
                }
                // A tensor of the member's own, in its parameter's memory format.
                let moment = |t: &Tensor| {
                    let slice = t.chunk(k, 0).swap_remove(j).reshape(shape.as_slice());
                    if *nhwc {
                        memory_format::channels_last(&slice)
                    } else if slice.is_contiguous() {
                        slice.copy()
                    } else {
                        slice.contiguous()
                    }
                };
                *solo = AdamState {
                    exp_avg: moment(&s.exp_avg),
                    exp_avg_sq: moment(&s.exp_avg_sq),
                    step,
                };
            }
        }
    }
}

fn unstackable(why: &str) -> TrainError {
    TrainError::InvalidConfig {
        key: "population".into(),
        expected: "members whose optimizers stack".into(),
        got: why.into(),
    }
}

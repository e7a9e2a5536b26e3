//! Learning-rate schedules applied per optimizer step, on top of the base rate that
//! ReduceLROnPlateau may lower. `cosine` is SGDR's annealing without restarts (Loshchilov &
//! Hutter 2017, arXiv:1608.03983): `lr_t = lr * 0.5 * (1 + cos(pi * t / T))` over the `T`
//! steps of the run.

use serde::{Deserialize, Serialize};

/// How the learning rate moves within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate throughout (the seed's behaviour).
    #[default]
    Constant,
    /// Cosine annealing from the base rate to 0 over the whole run.
    Cosine,
}

impl LrSchedule {
    /// Multiplier of the base rate at step `step` of `total` steps.
    pub fn factor(self, step: usize, total: usize) -> f64 {
        match self {
            Self::Constant => 1.0,
            Self::Cosine => {
                let progress = step as f64 / total.max(1) as f64;
                0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn cosine_starts_at_one_halves_midway_and_ends_at_zero() {
        let c = LrSchedule::Cosine;
        assert_eq!(c.factor(0, 100), 1.0);
        assert!((c.factor(50, 100) - 0.5).abs() < 1e-12);
        assert!(c.factor(100, 100).abs() < 1e-12);
        assert!(c.factor(25, 100) > c.factor(26, 100));
        assert_eq!(LrSchedule::Constant.factor(99, 100), 1.0);
    }
}

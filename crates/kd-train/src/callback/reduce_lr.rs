//! Learning-rate reduction on a plateau with Keras 2.4 semantics
//! (`tf.keras.callbacks.ReduceLROnPlateau`, as the seed notebook ran it):
//!
//! ```python
//! if in_cooldown(): cooldown_counter -= 1; wait = 0
//! if monitor_op(current, best):                      # np.less(a, b - min_delta)
//!     best = current; wait = 0
//! elif not in_cooldown():
//!     wait += 1
//!     if wait >= patience:
//!         old_lr = get_value(optimizer.lr)           # a float32
//!         if old_lr > float32(min_lr):
//!             new_lr = max(old_lr * factor, min_lr)
//!             print('Epoch %05d: ReduceLROnPlateau reducing learning rate to %s.')
//!             cooldown_counter = cooldown; wait = 0
//! ```
//!
//! Keras keeps the learning rate as a float32 and multiplies in float64, which is why the
//! notebook prints `9.999999747378752e-07` for `1e-5 * 0.1`; this callback does the same so
//! its log lines match.

use serde::{Deserialize, Serialize};

use super::{Action, Callback, EpochEnd, Monitor};
use crate::error::{Result, TrainError};

/// Settings of [`ReduceLrOnPlateau`]; defaults are the seed's `ReduceLROnPlateau(patience=2)`
/// with Keras' defaults (factor 0.1, min_delta 1e-4, cooldown 0, min_lr 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReduceLrConfig {
    /// Whether the learning rate is reduced on plateaus at all.
    pub enabled: bool,
    /// The metric watched, by name.
    pub monitor: Monitor,
    /// Multiplier applied to the learning rate, in (0, 1).
    pub factor: f64,
    /// Epochs without improvement before reducing.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Epochs to wait after a reduction before counting again.
    pub cooldown: usize,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
}

impl Default for ReduceLrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            monitor: Monitor::val_loss(),
            factor: 0.1,
            patience: 2,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
        }
    }
}

impl ReduceLrConfig {
    /// Checks ranges and builds the callback; `key` prefixes error messages.
    pub fn build(&self, key: &str) -> Result<ReduceLrOnPlateau> {
        let invalid = |field: &str, expected: &str, got: f64| TrainError::InvalidConfig {
            key: format!("{key}.{field}"),
            expected: expected.into(),
            got: got.to_string(),
        };
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(invalid("factor", "a value in (0, 1)", self.factor));
        }
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite()) {
            return Err(invalid("min_delta", "a finite value >= 0", self.min_delta));
        }
        if self.min_lr.is_nan() || self.min_lr < 0.0 {
            return Err(invalid("min_lr", "a value >= 0", self.min_lr));
        }
        Ok(ReduceLrOnPlateau {
            config: self.clone(),
            best: self.monitor.worst(),
            wait: 0,
            cooldown_counter: 0,
        })
    }
}

/// Reduces the learning rate when the monitored metric plateaus (see module docs). Its state
/// serializes, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    config: ReduceLrConfig,
    #[serde(with = "crate::json_float")]
    best: f64,
    wait: usize,
    cooldown_counter: usize,
}

impl Callback for ReduceLrOnPlateau {
    fn name(&self) -> &'static str {
        "reduce_lr"
    }

    super::state_is_self!();

    /// Watches its own monitor with its own `min_delta` (Keras keeps a separate best here).
    fn on_epoch_end(&mut self, epoch: &EpochEnd) -> Vec<Action> {
        let lr = epoch.lr;
        let Some(m) = epoch.history.last() else {
            return Vec::new();
        };
        let c = &self.config;
        let current = c.monitor.value(m);
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if c.monitor.improves(current, self.best, c.min_delta) {
            self.best = current;
            self.wait = 0;
            return Vec::new();
        }
        if self.cooldown_counter > 0 {
            return Vec::new();
        }
        self.wait += 1;
        if self.wait < c.patience {
            return Vec::new();
        }
        let old_lr = f64::from(lr as f32);
        if old_lr <= f64::from(c.min_lr as f32) {
            return Vec::new();
        }
        let new_lr = (old_lr * c.factor).max(c.min_lr);
        self.cooldown_counter = c.cooldown;
        self.wait = 0;
        vec![Action::SetLr(new_lr)]
    }
}

/// Formats a float as Python's `repr` does: shortest round-trip digits, scientific notation
/// with a two-digit exponent below 1e-4 or from 1e16 on, and `.0` on integral values.
pub fn python_float_repr(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').expect("`{:e}` writes an exponent");
        let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::test_support::drive;
    use crate::callback::BestTracker;

    /// Runs the callback over `val_losses` starting at `lr`, applying its reductions, and
    /// returns the learning rate in use after each epoch.
    fn lrs(config: ReduceLrConfig, lr: f64, val_losses: &[f64]) -> Vec<f64> {
        let mut cb = config.build("reduce_lr").unwrap();
        // The list's tracker does not drive this callback: it keeps its own best.
        let ignored = BestTracker::new(Monitor::val_accuracy(), 0.0);
        drive(&mut cb, ignored, lr, val_losses)
            .into_iter()
            .map(|(_, lr)| lr)
            .collect()
    }

    #[test]
    fn reduces_after_patience_plateau_epochs() {
        // patience 2: epochs 2 and 3 do not improve on 1.0 -> reduce at epoch 3; epochs 4, 5
        // do not improve either -> reduce again at 5.
        let got = lrs(ReduceLrConfig::default(), 1e-3, &[1.0, 1.0, 1.2, 1.1, 1.05]);
        assert_eq!(got[..2], [1e-3, 1e-3]);
        assert!((got[2] - 1e-4).abs() < 1e-11, "{got:?}");
        assert!((got[3] - 1e-4).abs() < 1e-11, "{got:?}");
        assert!((got[4] - 1e-5).abs() < 1e-12, "{got:?}");
    }

    #[test]
    fn reproduces_the_seeds_float32_learning_rates() {
        // The notebook's teacher (Adam 1e-5) printed, in order:
        // 9.999999747378752e-07, 9.999999974752428e-08, 1.0000000116860975e-08;
        // its student (Adam 1e-3) printed 0.00010000000474974513, 1.0000000474974514e-05.
        let plateau = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let got = lrs(ReduceLrConfig::default(), 1e-5, &plateau);
        let printed: Vec<String> = [got[2], got[4], got[6]]
            .iter()
            .map(|&x| python_float_repr(x))
            .collect();
        assert_eq!(
            printed,
            [
                "9.999999747378752e-07",
                "9.999999974752428e-08",
                "1.0000000116860975e-08"
            ]
        );
        let got = lrs(ReduceLrConfig::default(), 1e-3, &plateau[..5]);
        assert_eq!(python_float_repr(got[2]), "0.00010000000474974513");
        assert_eq!(python_float_repr(got[4]), "1.0000000474974514e-05");
    }

    #[test]
    fn cooldown_pauses_counting() {
        let cfg = ReduceLrConfig {
            patience: 1,
            cooldown: 2,
            ..Default::default()
        };
        // Keras: epoch 2 reduces (patience 1) and sets the cooldown counter to 2; epoch 3
        // counts it down to 1 and is skipped; epoch 4 counts it down to 0, is no longer in
        // cooldown and reduces again; epoch 5 is in the new cooldown.
        let got = lrs(cfg, 1.0, &[1.0, 1.0, 1.0, 1.0, 1.0]);
        assert!(got[1] < got[0] && got[2] == got[1], "{got:?}");
        assert!(got[3] < got[2] && got[4] == got[3], "{got:?}");
    }

    #[test]
    fn never_goes_below_min_lr() {
        let cfg = ReduceLrConfig {
            patience: 1,
            min_lr: 0.05,
            ..Default::default()
        };
        let got = lrs(cfg, 1.0, &[1.0, 1.0, 1.0, 1.0]);
        assert!((got[1] - 0.1).abs() < 1e-7 && got[3] == 0.05, "{got:?}");
    }

    #[test]
    fn factor_out_of_range_is_rejected() {
        let cfg = ReduceLrConfig {
            factor: 1.5,
            ..Default::default()
        };
        let err = cfg.build("student.train.reduce_lr").unwrap_err();
        assert!(err.to_string().contains("student.train.reduce_lr.factor"));
    }

    #[test]
    fn python_repr_matches_python() {
        // print(repr(x)) in Python 3.11 for each x below.
        assert_eq!(python_float_repr(0.001), "0.001");
        assert_eq!(python_float_repr(1e-5), "1e-05");
        assert_eq!(python_float_repr(1.0), "1.0");
        assert_eq!(python_float_repr(2.5e16), "2.5e+16");
    }
}

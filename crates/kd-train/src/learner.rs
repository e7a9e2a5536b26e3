//! [`Learner`]: a fit assembled step by step, in the spirit of burn's `LearnerBuilder` and
//! Keras' `compile` + `fit` — the network and its settings, then an objective (cross-entropy
//! or a [`Distiller`] over any teacher), metrics by name, the caller's callbacks, checkpoints,
//! progress and data parallelism — and run on any [`BatchSource`] with [`Learner::fit`].
//! It builds the [`FitHooks`] of [`fit_with`], the one loop.

use kd_core::Distiller;
use kd_models::Network;

use crate::batches::BatchSource;
use crate::callback::Callback;
use crate::checkpoint::Checkpoints;
use crate::config::TrainConfig;
use crate::distributed::DataParallel;
use crate::error::Result;
use crate::fit::{fit_with, FitHooks};
use crate::metric::Metric;
use crate::objective::Objective;
use crate::progress::Progress;
use crate::state::FitOutcome;

/// A fit under construction.
///
/// ```
/// use kd_data::Batch;
/// use kd_models::network::TchNetwork;
/// use kd_train::callback::{EarlyStoppingConfig, Monitor};
/// use kd_train::metric::TopK;
/// use kd_train::{Learner, TrainConfig};
/// use tch::{nn, nn::Module, Device, Kind, Tensor};
///
/// // A linear classifier of 4-pixel images, started at zero so that every run takes the
/// // same steps, and batches of a separable task.
/// let vs = nn::VarStore::new(Device::Cpu);
/// let zero = nn::Init::Const(0.0);
/// let zeros = nn::LinearConfig { ws_init: zero, bs_init: Some(zero), bias: true };
/// let linear = nn::linear(vs.root() / "fc", 4, 3, zeros);
/// let net = TchNetwork::new(vs, nn::func_t(move |x, _| linear.forward(&x.flatten(1, -1))));
/// let batch = |seed: i64| {
///     let labels = (Tensor::arange(24, (Kind::Int64, Device::Cpu)) + seed).remainder(3);
///     let images = labels.one_hot(4).to_kind(Kind::Float).reshape([24, 1, 2, 2]);
///     Batch { images, labels, indices: Tensor::arange(24, (Kind::Int64, Device::Cpu)) }
/// };
/// let (train, val) = (vec![batch(0), batch(1)], vec![batch(2)]);
///
/// let early_stopping = EarlyStoppingConfig {
///     monitor: Monitor::new("val_top2_accuracy"),
///     patience: 3,
///     ..Default::default()
/// };
/// let config = TrainConfig { epochs: 5, lr: 0.1, batch_size: 24, early_stopping, ..Default::default() };
/// let outcome = Learner::new(&net, &config).metric(TopK::new(2)).fit(&train, &val)?;
/// let last = outcome.history.epochs.last().unwrap();
/// assert_eq!(last.value("val_top2_accuracy"), Some(1.0));
/// assert!(last.val_accuracy > 0.9);
/// # Ok::<(), kd_train::TrainError>(())
/// ```
pub struct Learner<'a> {
    model: &'a dyn Network,
    config: &'a TrainConfig,
    objective: Objective<'a>,
    phase: String,
    hooks: FitHooks<'a>,
}

impl std::fmt::Debug for Learner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("config", self.config)
            .field("objective", &self.objective)
            .field("phase", &self.phase)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl<'a> Learner<'a> {
    /// A fit of `model` under `config`: cross-entropy on the labels, named `fit` in log
    /// lines and checkpoints, with no metrics, callbacks or checkpoints of its own yet.
    pub fn new(model: &'a dyn Network, config: &'a TrainConfig) -> Self {
        Self {
            model,
            config,
            objective: Objective::CrossEntropy,
            phase: "fit".into(),
            hooks: FitHooks::default(),
        }
    }

    /// What to minimize (default: cross-entropy on the labels).
    pub fn objective(mut self, objective: Objective<'a>) -> Self {
        self.objective = objective;
        self
    }

    /// Distillation through `distiller`: its teacher (a kd model, a TorchScript module, a
    /// user's network, or cached logits) and its loss.
    pub fn distill(self, distiller: Distiller<'a>) -> Self {
        self.objective(Objective::Distill(distiller))
    }

    /// The fit's name in log lines and checkpoints (`student`, `teacher`, ...).
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.into();
        self
    }

    /// A validation metric, recorded each epoch under its name (which monitors may name).
    pub fn metric(mut self, metric: impl Metric + 'a) -> Self {
        self.hooks.metrics.push(Box::new(metric));
        self
    }

    /// A callback of the caller's, run after the built-in ones and checkpointed under its
    /// name.
    ///
    /// ```
    /// use kd_data::Batch;
    /// use kd_models::network::TchNetwork;
    /// use kd_train::callback::{Action, Callback, EarlyStoppingConfig, EpochEnd};
    /// use kd_train::{Checkpoints, Learner, TrainConfig};
    /// use tch::{nn, nn::Module, Device, Kind, Tensor};
    ///
    /// /// Stops once the training loss is below `target`; counts the epochs it watched.
    /// #[derive(Debug, serde::Serialize, serde::Deserialize)]
    /// struct StopBelow { target: f64, watched: usize }
    ///
    /// impl Callback for StopBelow {
    ///     fn name(&self) -> &'static str { "stop_below" }
    ///     fn on_epoch_end(&mut self, epoch: &EpochEnd) -> Vec<Action> {
    ///         self.watched += 1;
    ///         let loss = epoch.history.last().map_or(f64::INFINITY, |m| m.loss);
    ///         if loss < self.target { vec![Action::Stop] } else { Vec::new() }
    ///     }
    ///     fn state(&self) -> serde_json::Value { serde_json::to_value(self).unwrap() }
    ///     fn load_state(&mut self, s: serde_json::Value) -> serde_json::Result<()> {
    ///         *self = serde_json::from_value(s)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let fc = nn::linear(vs.root() / "fc", 4, 2, Default::default());
    /// let net = TchNetwork::new(vs, nn::func_t(move |x, _| fc.forward(&x.flatten(1, -1))));
    /// let labels = Tensor::arange(16, (Kind::Int64, Device::Cpu)).remainder(2);
    /// let images = labels.one_hot(4).to_kind(Kind::Float).reshape([16, 1, 2, 2]);
    /// let data = vec![Batch { images, labels, indices: Tensor::arange(16, (Kind::Int64, Device::Cpu)) }];
    ///
    /// let dir = std::env::temp_dir().join(format!("kd-learner-doc-{}", std::process::id()));
    /// let checkpoints = Checkpoints::new(dir.clone(), "doc");
    /// let early_stopping = EarlyStoppingConfig { enabled: false, ..Default::default() };
    /// let config = TrainConfig { epochs: 50, lr: 0.1, batch_size: 16, early_stopping, ..Default::default() };
    /// let outcome = Learner::new(&net, &config)
    ///     .callback(StopBelow { target: 0.3, watched: 0 })
    ///     .checkpoints(&checkpoints)
    ///     .fit(&data, &data)?;
    /// let stopped = outcome.stopped_epoch.expect("the loss falls below 0.3");
    /// assert!(stopped < 50 && outcome.history.epochs[stopped - 1].loss < 0.3);
    /// assert!(checkpoints.last_path().is_file());
    /// std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), kd_train::TrainError>(())
    /// ```
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.hooks.callbacks.push(Box::new(callback));
        self
    }

    /// Checkpoints after every epoch (and resuming from the last one, if `checkpoints`
    /// resume).
    pub fn checkpoints(mut self, checkpoints: &'a Checkpoints) -> Self {
        self.hooks.checkpoints = Some(checkpoints);
        self
    }

    /// Told about every batch and epoch.
    pub fn progress(mut self, progress: &'a mut dyn Progress) -> Self {
        self.hooks.progress = Some(progress);
        self
    }

    /// Data parallelism over a c10d process group: each rank steps on its share of every
    /// batch.
    pub fn data_parallel(mut self, parallel: DataParallel<'a>) -> Self {
        self.hooks.parallel = Some(parallel);
        self
    }

    /// Trains on `train`, validating on `val` after each epoch.
    pub fn fit(self, train: &dyn BatchSource, val: &dyn BatchSource) -> Result<FitOutcome> {
        let (model, config, objective) = (self.model, self.config, &self.objective);
        fit_with(
            model,
            train,
            val,
            objective,
            config,
            &self.phase,
            self.hooks,
        )
    }
}

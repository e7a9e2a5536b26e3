//! One optimizer step on one batch, the only one kd has: the fit's epochs, `kd-cli bench`
//! and `kd-cli doctor` all step through a [`Stepper`], so what is timed and checked is what
//! trains.
//!
//! A step is the objective's forward and loss, back-propagation (weighted and summed over
//! ranks by the replicas), then Adam — plainly, through float16 loss scaling (a step with an
//! overflowing gradient is skipped by the scaler's own rules, PyTorch's `GradScaler`), or as
//! the replay of a CUDA graph ([`crate::graphed`]). What the step found not finite is
//! returned, not acted on: the non-finite policy is the caller's (the fit applies it in one
//! place).

use kd_core::{LossParts, Split};
use kd_data::Batch;
use kd_models::{Network, Precision};
use tch::Tensor;

use crate::error::Result;
use crate::graphed::{GraphedSteps, Replay};
use crate::loss_scale::LossScaler;
use crate::objective::Objective;
use crate::optimizer::Adam;
use crate::replicas::Replicas;

/// What became of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Stepped {
    /// The weights changed (a graphed step with a non-finite loss is skipped on the device
    /// and counted there: [`Stepper::take_nonfinite`]).
    Taken,
    /// float16 loss scaling skipped it (an overflow; the scale was halved).
    SkippedByScaler,
    /// The loss or a gradient is not finite (named); the weights did not change.
    NonFinite(String),
}

/// One step's result.
#[derive(Debug)]
pub struct Step {
    /// Whether the weights changed.
    pub stepped: Stepped,
    /// The logits and loss of the images this process stepped on, on the device (`None`:
    /// data parallelism left this rank none of the batch).
    pub output: Option<(Tensor, LossParts)>,
    /// The labels of those images.
    pub labels: Tensor,
}

/// Adam over a network's trainable variables, with the float16 loss scaler its precision
/// needs and, where asked, CUDA graphs of its steps.
///
/// ```
/// use kd_data::Batch;
/// use kd_models::{Model, ModelConfig, StudentConfig};
/// use kd_train::{Objective, Stepped, Stepper};
/// use tch::{Device, Kind, Tensor};
///
/// let config = ModelConfig::Student(StudentConfig { blocks: 1, convs_per_block: 1, width: 4 });
/// let model = Model::new(&config, 1, 8, 3, Device::Cpu)?;
/// let batch = Batch {
///     images: Tensor::rand([4, 1, 8, 8], (Kind::Float, Device::Cpu)),
///     labels: Tensor::from_slice(&[0i64, 1, 2, 0]),
///     indices: Tensor::arange(4, (Kind::Int64, Device::Cpu)),
/// };
/// let mut stepper = Stepper::new(&model, 1e-3, 0.0);
/// let step = stepper.step(&model, &Objective::CrossEntropy, &batch)?;
/// assert_eq!(step.stepped, Stepped::Taken);
/// assert_eq!(stepper.optimizer().state().1.values().next(), Some(&1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Stepper {
    opt: Adam,
    /// The optimizer's parameters (what gradients are computed for).
    trainable: Vec<Tensor>,
    scaler: Option<LossScaler>,
    graphs: Option<GraphedSteps>,
    /// Only batches of this many images are graphed (`None`: every size).
    graphed_size: Option<usize>,
}

impl Stepper {
    /// Adam (learning rate `lr`, L2 `weight_decay`) over `model`'s trainable variables; a
    /// float16 model gets a loss scaler.
    pub fn new(model: &dyn Network, lr: f64, weight_decay: f64) -> Self {
        let opt = Adam::new(model.var_store(), lr, weight_decay);
        let trainable = opt.params().iter().map(Tensor::shallow_clone).collect();
        Self {
            opt,
            trainable,
            scaler: (model.precision() == Precision::F16).then(LossScaler::default),
            graphs: None,
            graphed_size: None,
        }
    }

    /// Steps replayed as CUDA graphs (or, with [`Replay::Eager`], the same static-buffer
    /// steps run eagerly): one graph per batch size, or for batches of `only_size` images
    /// alone (a fit's last, partial batch then steps eagerly). Adam takes its capturable form.
    ///
    /// ```
    /// use kd_data::Batch;
    /// use kd_models::{Model, ModelConfig, StudentConfig};
    /// use kd_train::graphed::Replay;
    /// use kd_train::{Objective, Stepper};
    /// use tch::{Device, Kind, Tensor};
    ///
    /// let config = ModelConfig::Student(StudentConfig { blocks: 1, convs_per_block: 1, width: 4 });
    /// let model = Model::new(&config, 1, 8, 3, Device::Cpu)?;
    /// let batch = |n: i64| Batch {
    ///     images: Tensor::rand([n, 1, 8, 8], (Kind::Float, Device::Cpu)),
    ///     labels: Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(3),
    ///     indices: Tensor::arange(n, (Kind::Int64, Device::Cpu)),
    /// };
    /// // Without a GPU, `Replay::Eager` runs the graphed steps' static buffers eagerly.
    /// let mut stepper = Stepper::new(&model, 1e-3, 0.0);
    /// stepper.use_graphs(Replay::Eager, Some(4));
    /// for _ in 0..4 {
    ///     stepper.step(&model, &Objective::CrossEntropy, &batch(4))?; // 3 warm-ups, 1 capture
    /// }
    /// stepper.step(&model, &Objective::CrossEntropy, &batch(3))?; // a partial batch: eager
    /// assert_eq!(stepper.captures(), 1);
    /// assert_eq!(stepper.take_nonfinite(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn use_graphs(&mut self, replay: Replay, only_size: Option<usize>) {
        let device = self
            .trainable
            .first()
            .map_or(tch::Device::Cpu, Tensor::device);
        self.graphs = Some(GraphedSteps::new(replay, device));
        self.graphed_size = only_size;
    }

    /// One step of `model` on `batch` under `objective`, in this process alone.
    pub fn step(
        &mut self,
        model: &dyn Network,
        objective: &Objective,
        batch: &Batch,
    ) -> Result<Step> {
        self.step_replicated(model, objective, batch, Replicas::new(None))
    }

    /// One step on this rank's share of `batch`, gradients summed over `replicas`.
    pub(crate) fn step_replicated(
        &mut self,
        model: &dyn Network,
        objective: &Objective,
        batch: &Batch,
        replicas: Replicas,
    ) -> Result<Step> {
        let graphed = self.graphed_size.is_none_or(|n| n == batch.len());
        if let Some(graphs) = self.graphs.as_mut().filter(|_| graphed) {
            let output = graphs.step(&mut self.opt, &self.trainable, model, objective, batch)?;
            return Ok(Step {
                stepped: Stepped::Taken,
                output: Some(output),
                labels: batch.labels.shallow_clone(),
            });
        }
        let (batch, share) = replicas.shard(batch);
        let output =
            (!batch.is_empty()).then(|| objective.forward_loss(model, &batch, Split::Train, true));
        let loss = output.as_ref().map(|(_, out)| &out.total);
        let stepped = self.backward_and_update(loss, share, replicas)?;
        Ok(Step {
            stepped,
            output,
            labels: batch.labels,
        })
    }

    fn backward_and_update(
        &mut self,
        loss: Option<&Tensor>,
        share: f64,
        replicas: Replicas,
    ) -> Result<Stepped> {
        if let (Some(scaler), Some(loss)) = (self.scaler.as_mut(), loss) {
            let opt = &mut self.opt;
            let taken = scaler.backward_step(&mut self.trainable, loss, || opt.step())?;
            return Ok(if taken {
                Stepped::Taken
            } else {
                Stepped::SkippedByScaler
            });
        }
        Ok(
            match replicas.backward(&mut self.opt, &self.trainable, loss, share)? {
                None => {
                    self.opt.step()?;
                    Stepped::Taken
                }
                Some(what) => Stepped::NonFinite(what),
            },
        )
    }

    /// The learning rate of the next step.
    pub fn set_lr(&mut self, lr: f64) {
        self.opt.set_lr(lr);
    }

    /// The optimizer (its state is what checkpoints keep).
    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// The optimizer, to load a checkpoint's state into or to move to its capturable form.
    pub fn optimizer_mut(&mut self) -> &mut Adam {
        &mut self.opt
    }

    /// The float16 loss scaler (`None` for float32 and bfloat16).
    pub fn scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// Puts back a checkpoint's loss scaler.
    pub fn set_scaler(&mut self, scaler: Option<LossScaler>) {
        self.scaler = scaler;
    }

    /// Graphs captured so far (one per batch size).
    pub fn captures(&self) -> usize {
        self.graphs.as_ref().map_or(0, GraphedSteps::captures)
    }

    /// Graphed steps skipped for a non-finite loss or gradient since the last call (one read
    /// from the device), and the count reset; 0 without graphs.
    pub fn take_nonfinite(&mut self) -> usize {
        self.graphs.as_mut().map_or(0, GraphedSteps::take_nonfinite)
    }
}

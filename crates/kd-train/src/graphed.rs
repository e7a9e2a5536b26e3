//! Training steps as CUDA graphs: the whole step — forward, loss, backward, the non-finite
//! check and Adam's update — captured once per batch size and replayed, so that a small
//! model's step costs one launch instead of hundreds (PyTorch's "whole network capture",
//! `torch.cuda.graph`, and what `torch.compile(mode="reduce-overhead")` does).
//!
//! A graph reads and writes fixed tensors, so each batch size gets its own static batch
//! (images, labels, dataset indices) that every batch is copied into before a replay, and
//! keeps the outputs (logits, loss parts) the capture produced. The first three batches of a
//! size are warm-ups, ordinary steps on a side stream that bring gradients, optimizer state
//! and cuDNN's choices into being; the fourth is captured (a capture launches nothing) and
//! replayed; every later one is replayed. Adam runs in its capturable form (counts and learning rate on the device),
//! so learning-rate changes and checkpoints keep working.
//!
//! Nothing is read back per step: a step whose loss or gradients are not finite is skipped on
//! the device (the weights do not change) and counted there; the count is read once per
//! epoch ([`GraphedSteps::take_nonfinite`]). Where no GPU is present the same static-buffer
//! steps run eagerly ([`Replay::Eager`]), which is how the CPU tests check them.

use std::collections::HashMap;

use kd_core::{LossParts, Split};
use kd_data::Batch;
use kd_models::{Network, Precision};
use kd_sys::cuda_graph::{warm_up_on_side_stream, CudaGraph};
use tch::{Device, Kind, Tensor};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::nonfinite::OnNonFinite;
use crate::objective::Objective;
use crate::optimizer::Adam;

/// How a captured step is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Captured on CUDA device `n` and replayed as a graph.
    Graph(usize),
    /// Run eagerly on the static buffers each time (no GPU; the same steps, launched one by
    /// one).
    Eager,
}

/// Eager steps of a batch size before its capture (PyTorch's recipe runs a few, so that the
/// capture finds gradients, optimizer state, cuDNN's choices and the allocator's blocks in
/// their steady state).
const WARM_UP_STEPS: usize = 3;

/// Where a batch size is in its life: warming up, then captured.
enum Shape {
    /// `done` warm-up steps ran; after [`WARM_UP_STEPS`] the next batch is captured.
    WarmingUp { step: StaticStep, done: usize },
    Captured {
        step: StaticStep,
        graph: Option<CudaGraph>,
    },
}

/// The fixed tensors of one batch size's step.
struct StaticStep {
    batch: Batch,
    /// Outputs of the step as captured (the graph writes them on every replay).
    logits: Tensor,
    loss: LossParts,
}

/// The graphed steps of one fit.
pub struct GraphedSteps {
    replay: Replay,
    shapes: HashMap<usize, Shape>,
    /// Steps skipped for a non-finite loss or gradient since the last read (on the device).
    nonfinite: Tensor,
    /// Graphs captured so far (one per batch size).
    captures: usize,
}

impl std::fmt::Debug for GraphedSteps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sizes: Vec<&usize> = self.shapes.keys().collect();
        sizes.sort();
        f.debug_struct("GraphedSteps")
            .field("replay", &self.replay)
            .field("batch_sizes", &sizes)
            .field("captures", &self.captures)
            .finish()
    }
}

impl GraphedSteps {
    /// No graphs yet; steps replay as `replay` says, counting non-finite steps on `device`.
    pub fn new(replay: Replay, device: Device) -> Self {
        Self {
            replay,
            shapes: HashMap::new(),
            nonfinite: Tensor::zeros([], (Kind::Float, device)),
            captures: 0,
        }
    }

    /// How many graphs were captured.
    pub fn captures(&self) -> usize {
        self.captures
    }

    /// One training step on `batch` through the graph of its size (warming up or capturing
    /// it first where needed); returns the step's logits and loss, on the device. No value
    /// is read back to the host.
    pub fn step(
        &mut self,
        opt: &mut Adam,
        trainable: &[Tensor],
        model: &dyn Network,
        objective: &Objective,
        batch: &Batch,
    ) -> Result<(Tensor, LossParts)> {
        let size = batch.len();
        let nonfinite = self.nonfinite.shallow_clone();
        let body = |input: &Batch, opt: &mut Adam| -> Result<(Tensor, LossParts)> {
            graph_body(opt, trainable, model, objective, input, &nonfinite)
        };
        let warm_up = |step: &mut StaticStep, opt: &mut Adam| -> Result<()> {
            (step.logits, step.loss) = match self.replay {
                Replay::Graph(device) => {
                    let mut out = None;
                    warm_up_on_side_stream(device, || -> Result<()> {
                        out = Some(body(&step.batch, opt)?);
                        Ok(())
                    })
                    .map_err(graph_error)?;
                    out.expect("the warm-up ran")
                }
                Replay::Eager => body(&step.batch, opt)?,
            };
            Ok(())
        };
        match self.shapes.remove(&size) {
            None => {
                // The first warm-up: an ordinary step on static copies of this batch.
                let mut step = StaticStep::of(batch);
                warm_up(&mut step, opt)?;
                let out = (step.logits.shallow_clone(), clone_parts(&step.loss));
                self.shapes.insert(size, Shape::WarmingUp { step, done: 1 });
                Ok(out)
            }
            Some(Shape::WarmingUp { mut step, done }) if done < WARM_UP_STEPS => {
                copy_batch(&step.batch, batch);
                warm_up(&mut step, opt)?;
                let out = (step.logits.shallow_clone(), clone_parts(&step.loss));
                let done = done + 1;
                self.shapes.insert(size, Shape::WarmingUp { step, done });
                Ok(out)
            }
            Some(Shape::WarmingUp { mut step, .. }) => {
                copy_batch(&step.batch, batch);
                let graph = capture(self.replay, &mut step, &mut |b| body(b, opt))?;
                self.captures += 1;
                let out = (step.logits.shallow_clone(), clone_parts(&step.loss));
                self.shapes.insert(size, Shape::Captured { step, graph });
                Ok(out)
            }
            Some(Shape::Captured { mut step, graph }) => {
                copy_batch(&step.batch, batch);
                match &graph {
                    Some(graph) => graph.replay().map_err(graph_error)?,
                    None => (step.logits, step.loss) = body(&step.batch, opt)?,
                }
                let out = (step.logits.shallow_clone(), clone_parts(&step.loss));
                self.shapes.insert(size, Shape::Captured { step, graph });
                Ok(out)
            }
        }
    }

    /// The number of steps skipped for a non-finite loss or gradient since the last call
    /// (one read from the device), and the count reset.
    pub fn take_nonfinite(&mut self) -> usize {
        let n = self.nonfinite.double_value(&[]).round() as usize;
        tch::no_grad(|| {
            let _ = self.nonfinite.zero_();
        });
        n
    }
}

impl StaticStep {
    /// Static copies of `batch`, with no outputs yet.
    fn of(batch: &Batch) -> Self {
        Self {
            batch: static_copy(batch),
            logits: Tensor::new(),
            loss: LossParts {
                total: Tensor::new(),
                parts: Vec::new(),
            },
        }
    }
}

/// Captures `run` on `step`'s static batch as a CUDA graph (`Replay::Graph`) and replays it
/// once — a capture launches nothing, so the first replay is this batch's step — or runs it
/// eagerly (`Replay::Eager`); `step` keeps the outputs.
fn capture(
    replay: Replay,
    step: &mut StaticStep,
    run: &mut dyn FnMut(&Batch) -> Result<(Tensor, LossParts)>,
) -> Result<Option<CudaGraph>> {
    match replay {
        Replay::Graph(device) => {
            let mut out = None;
            let graph = CudaGraph::capture(device, || -> Result<()> {
                out = Some(run(&step.batch)?);
                Ok(())
            })
            .map_err(graph_error)?;
            (step.logits, step.loss) = out.expect("the capture ran");
            graph.replay().map_err(graph_error)?;
            Ok(Some(graph))
        }
        Replay::Eager => {
            (step.logits, step.loss) = run(&step.batch)?;
            Ok(None)
        }
    }
}

/// The step a graph holds: gradients cleared, forward and loss, backward, a device-side
/// flag for a non-finite loss or gradient (counted into `nonfinite`), and Adam's capturable
/// update, skipped where the flag is set.
fn graph_body(
    opt: &mut Adam,
    trainable: &[Tensor],
    model: &dyn Network,
    objective: &Objective,
    batch: &Batch,
    nonfinite: &Tensor,
) -> Result<(Tensor, LossParts)> {
    let (logits, out) = objective.forward_loss(model, batch, Split::Train, true);
    opt.zero_grad();
    out.total.backward();
    let skip = tch::no_grad(|| {
        let mut finite = out.total.isfinite();
        for p in trainable {
            let g = p.grad();
            if g.defined() {
                finite = finite.logical_and(&g.isfinite().all());
            }
        }
        let skip = finite.logical_not().to_kind(Kind::Float);
        let mut count = nonfinite.shallow_clone();
        let _ = count.g_add_(&skip);
        skip
    });
    opt.capturable()
        .step(trainable, Some(&skip))
        .map_err(|cause| TrainError::Optimizer { cause })?;
    Ok((logits, out))
}

/// A copy of `batch` in tensors of its own (the static buffers of its size).
fn static_copy(batch: &Batch) -> Batch {
    Batch {
        images: batch.images.copy(),
        labels: batch.labels.copy(),
        indices: batch.indices.copy(),
    }
}

/// Copies `batch` into the static buffers `into` (same sizes).
fn copy_batch(into: &Batch, batch: &Batch) {
    tch::no_grad(|| {
        into.images.shallow_clone().copy_(&batch.images);
        into.labels.shallow_clone().copy_(&batch.labels);
        into.indices.shallow_clone().copy_(&batch.indices);
    });
}

fn clone_parts(parts: &LossParts) -> LossParts {
    LossParts {
        total: parts.total.shallow_clone(),
        parts: parts
            .parts
            .iter()
            .map(|(name, t)| (*name, t.shallow_clone()))
            .collect(),
    }
}

/// What keeps a fit from graphed steps, if anything: it needs a CUDA device, a build with
/// graphs, an objective without host-side work per step (`capturable_objective`), no
/// float16 loss scaling, one process, and `on_nonfinite = "stop"`.
fn blocker(
    config: &TrainConfig,
    device: Device,
    precision: Precision,
    capturable_objective: bool,
    data_parallel: bool,
) -> Option<&'static str> {
    match device {
        Device::Cuda(_) if !kd_sys::cuda_graph::cuda_graphs_built() => {
            Some("a kd built with CUDA graphs (this one was built without the CUDA headers)")
        }
        Device::Cuda(_) => None,
        _ => Some("a CUDA device"),
    }
    .or_else(|| {
        (!capturable_objective).then_some(
        "an objective without host-side work per step (no mixup, not the DKD loss, cached teacher logits on the GPU: at most 1 GiB of them)",
    )
    })
    .or_else(|| {
        (precision == Precision::F16)
            .then_some("float32 or bfloat16 (float16 loss scaling reads the host every step)")
    })
    .or_else(|| data_parallel.then_some("a single process (not data parallelism)"))
    .or_else(|| {
        (config.on_nonfinite != OnNonFinite::Stop).then_some(
            "on_nonfinite = \"stop\" (a graph finds skipped batches only at the end of the epoch)",
        )
    })
}

fn refused(key: &str, needs: &str) -> TrainError {
    TrainError::InvalidConfig {
        key: format!("{key}.cuda_graphs"),
        expected: format!("true only with {needs}"),
        got: "true".into(),
    }
}

/// Checks, before anything trains, that a fit config (at `key`, e.g. `student.train`) asking
/// for `cuda_graphs = true` can have them on `device` at `precision`, with an objective
/// whose steps are `capturable_objective`; the error names the key and what is missing.
pub fn check_request(
    config: &TrainConfig,
    device: Device,
    precision: Precision,
    capturable_objective: bool,
    data_parallel: bool,
    key: &str,
) -> Result<()> {
    if config.cuda_graphs != Some(true) {
        return Ok(());
    }
    match blocker(
        config,
        device,
        precision,
        capturable_objective,
        data_parallel,
    ) {
        Some(needs) => Err(refused(key, needs)),
        None => Ok(()),
    }
}

/// Whether the fit `phase` under `config` runs graphed steps, and how: `cuda_graphs` unset
/// means "where it can" (see [`blocker`]); `true` asks for it and makes each blocker an
/// error naming the key; `false` turns it off.
pub(crate) fn resolve(
    config: &TrainConfig,
    model: &dyn Network,
    objective: &Objective,
    data_parallel: bool,
    phase: &str,
) -> Result<Option<Replay>> {
    if config.cuda_graphs == Some(false) {
        return Ok(None);
    }
    let device = model.var_store().device();
    let capturable = objective.capturable_on(device);
    match blocker(config, device, model.precision(), capturable, data_parallel) {
        None => Ok(match device {
            Device::Cuda(n) => Some(Replay::Graph(n)),
            _ => None,
        }),
        Some(_) if config.cuda_graphs.is_none() => Ok(None),
        Some(needs) => Err(refused(phase, needs)),
    }
}

fn graph_error(e: kd_sys::cuda_graph::GraphError) -> TrainError {
    TrainError::Graph {
        message: e.to_string(),
    }
}

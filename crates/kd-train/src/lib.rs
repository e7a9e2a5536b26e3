#![warn(missing_docs)]
//! Training layer of kd: the loop, the optimizer, metrics and Keras-style callbacks.
//!
//! - [`Learner`]: a fit assembled step by step (objective, metrics, callbacks,
//!   checkpoints, replicas), then run on any [`BatchSource`];
//! - [`fit`](mod@fit): the loop ([`fit()`], [`fit_with`]), each concern behind it in a file of its own:
//!   - `training`: the state of a fit in progress (start or resume, callbacks' actions,
//!     checkpoints, finish);
//!   - `epoch`: the batches of one epoch and its metrics;
//!   - [`stepper`]: the one optimizer step — eager, loss-scaled or a CUDA-graph replay —
//!     that the fit, `bench` and `doctor` take;
//!   - [`graphed`]: training steps captured as CUDA graphs and replayed;
//!   - `replicas`: one process or data parallelism, with every collective the loop makes;
//! - [`population`]: K students of one architecture trained as one fused model
//!   ([`fit_population`]), each member as its solo fit;
//! - [`batches`]: [`BatchSource`], any source of mini-batches (kd-data's loader is one);
//! - [`config`]: [`TrainConfig`], the settings of a fit;
//! - [`objective`]: cross-entropy, or kd-core's `Distiller`;
//! - [`evaluate`](mod@evaluate): loss/accuracy passes and logit prediction;
//! - [`teacher_cache`]: the teacher's logits cached from a loader;
//! - [`schedule`]: per-step learning-rate schedules (constant, cosine);
//! - [`callback`]: the callback list — best checkpoint, `EarlyStopping` and
//!   `ReduceLROnPlateau` with Keras 2.4 semantics;
//! - [`distributed`]: data-parallel training over c10d (torchrun's environment);
//! - [`checkpoint`]: last and best checkpoints, and resuming from them;
//! - [`state`]: the resume state as checkpoints store it (the on-disk format);
//! - [`optimizer`]: Adam with its state open to checkpoints;
//! - [`metrics`]: per-epoch metrics and history;
//! - [`metric`]: validation metrics a caller registers by name ([`metric::TopK`], closures);
//! - [`nonfinite`]: catching NaN and infinite losses and gradients;
//! - [`progress`]: observing a run as it goes (progress bars);
//! - [`loss_scale`]: dynamic loss scaling for float16 mixed precision.

pub mod batches;
pub mod callback;
pub mod checkpoint;
pub mod config;
pub mod distributed;
mod epoch;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod graphed;
mod json_float;
mod learner;
pub mod loss_scale;
pub mod metric;
pub mod metrics;
pub mod nonfinite;
pub mod objective;
pub mod optimizer;
pub mod population;
pub mod progress;
mod replicas;
pub mod schedule;
mod snapshot;
pub mod state;
pub mod stepper;
pub mod teacher_cache;
mod training;

pub use batches::BatchSource;
pub use checkpoint::Checkpoints;
pub use config::TrainConfig;
pub use error::{CheckpointError, Result, TrainError};
pub use evaluate::{evaluate, evaluate_with_confusion, predict_logits, Evaluation};
pub use fit::{fit, fit_with, FitHooks};
pub use kd_core::Split;
pub use learner::Learner;
pub use loss_scale::LossScaler;
pub use metrics::{EpochMetrics, History};
pub use nonfinite::OnNonFinite;
pub use objective::Objective;
pub use optimizer::Adam;
pub use population::{fit_population, Member, PopulationHooks};
pub use progress::{NoProgress, Progress};
pub use schedule::LrSchedule;
pub use state::{FitOutcome, TrainEvent};
pub use stepper::{Step, Stepped, Stepper};
pub use teacher_cache::{cache_teacher_logits, teacher_logit_cache};

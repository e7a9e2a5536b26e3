//! Training layer of kd: the loop, the optimizer, metrics and Keras-style callbacks.
//!
//! - [`trainer`]: [`fit`] and its [`TrainConfig`];
//! - [`objective`]: cross-entropy or distillation against cached teacher logits;
//! - [`evaluate`]: loss/accuracy passes and logit prediction;
//! - [`schedule`]: per-step learning-rate schedules (constant, cosine);
//! - [`callback`]: `EarlyStopping` and `ReduceLROnPlateau` with Keras 2.4 semantics;
//! - [`distributed`]: data-parallel training over c10d (torchrun's environment);
//! - [`checkpoint`]: last and best checkpoints, and resuming from them;
//! - [`optimizer`]: Adam with its state open to checkpoints;
//! - [`metrics`]: per-epoch metrics and history;
//! - [`nonfinite`]: catching NaN and infinite losses and gradients in the step;
//! - [`progress`]: observing a run as it goes (progress bars);
//! - [`loss_scale`]: dynamic loss scaling for float16 mixed precision.

pub mod callback;
pub mod checkpoint;
pub mod distributed;
pub mod error;
pub mod evaluate;
mod json_float;
pub mod loss_scale;
pub mod metrics;
pub mod nonfinite;
pub mod objective;
pub mod optimizer;
pub mod progress;
pub mod schedule;
pub mod teacher_cache;
pub mod trainer;

pub use checkpoint::Checkpoints;
pub use error::{Result, TrainError};
pub use evaluate::{evaluate, evaluate_with_confusion, predict_logits, Evaluation};
pub use loss_scale::LossScaler;
pub use metrics::{EpochMetrics, History};
pub use nonfinite::OnNonFinite;
pub use objective::{Objective, Split, TeacherSignal};
pub use optimizer::Adam;
pub use progress::{NoProgress, Progress};
pub use schedule::LrSchedule;
pub use teacher_cache::cache_teacher_logits;
pub use trainer::{fit, fit_with, FitHooks, FitOutcome, TrainConfig, TrainEvent};

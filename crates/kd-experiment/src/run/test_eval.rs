//! The test-set evaluation of a finished model. The report's test accuracy is the float32
//! accuracy of the saved weights: what `kd-cli eval` prints by default and what every
//! exported float file (TorchScript, ONNX) computes. A run in mixed precision (bf16, f16)
//! is also evaluated in that precision — the arithmetic its validation and early stopping
//! saw — and the report shows both, since lower-precision kernels round differently from
//! one CPU generation to the next and the two accuracies differ by a few images.

use anyhow::{Context, Result};
use kd_data::BatchLoader;
use kd_models::{Model, Precision};
use kd_train::{evaluate_with_confusion, Evaluation, Objective, Split};

/// A finished model's test-set results.
#[derive(Debug, Clone)]
pub(super) struct TestEvaluation {
    /// In float32 (in the run's memory format).
    pub float32: Evaluation,
    /// The float32 confusion matrix, `[true][predicted]`.
    pub confusion: Vec<Vec<i64>>,
    /// In the run's mixed precision, when it is not float32.
    pub run_precision: Option<(Precision, Evaluation)>,
}

impl TestEvaluation {
    /// Inference speed in the run's own arithmetic (what its latency figures measure too).
    pub fn images_per_s(&self) -> f64 {
        self.run_precision
            .map_or(self.float32.images_per_s, |(_, e)| e.images_per_s)
    }
}

/// Evaluates `model` on `test` in float32 and, if it computes in mixed precision, in that
/// precision; `model` computes in its own precision again afterwards.
pub(super) fn evaluate_test(
    model: &mut Model,
    test: &BatchLoader,
    classes: usize,
) -> Result<TestEvaluation> {
    let pass = |model: &Model| {
        evaluate_with_confusion(
            model,
            test,
            &Objective::CrossEntropy,
            Split::Validation,
            classes,
        )
    };
    let precision = model.precision();
    if precision == Precision::F32 {
        let (float32, confusion) = pass(model)?;
        return Ok(TestEvaluation {
            float32,
            confusion,
            run_precision: None,
        });
    }
    let (mixed, _) = pass(model)?;
    model
        .set_precision(Precision::F32)
        .context("cannot evaluate the model in float32")?;
    let (float32, confusion) = pass(model)?;
    model.set_precision(precision).with_context(|| {
        format!("cannot return the model to {precision} after its float32 test")
    })?;
    Ok(TestEvaluation {
        float32,
        confusion,
        run_precision: Some((precision, mixed)),
    })
}

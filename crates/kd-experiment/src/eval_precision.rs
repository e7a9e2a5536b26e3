//! The arithmetic `eval` and `predict` run a saved model in. Float32 by default: the
//! report's test accuracy and what every exported float file computes. `run` is the
//! precision the run trained and validated the model in, which its file records (bf16 on
//! CPUs with native bfloat16 under `precision = "auto"`): it reproduces the report's
//! "test acc in bf16" line.

use kd_models::Precision;

/// `--precision` of `eval` and `predict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvalPrecision {
    /// float32, as the report's test accuracy and the exported float files.
    #[default]
    F32,
    /// The precision the run evaluated the model in (recorded in the file).
    Run,
    /// bfloat16 mixed precision.
    Bf16,
    /// float16 mixed precision.
    F16,
}

impl EvalPrecision {
    /// The precision to compute in, given the one the file records (`None`: an older file,
    /// whose runs were float32).
    pub fn resolve(self, recorded: Option<Precision>) -> Precision {
        match self {
            Self::F32 => Precision::F32,
            Self::Run => recorded.unwrap_or(Precision::F32),
            Self::Bf16 => Precision::Bf16,
            Self::F16 => Precision::F16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_means_the_recorded_precision_and_the_default_is_float32() {
        assert_eq!(
            EvalPrecision::default().resolve(Some(Precision::Bf16)),
            Precision::F32
        );
        assert_eq!(
            EvalPrecision::Run.resolve(Some(Precision::Bf16)),
            Precision::Bf16
        );
        assert_eq!(EvalPrecision::Run.resolve(None), Precision::F32);
        assert_eq!(
            EvalPrecision::F16.resolve(Some(Precision::Bf16)),
            Precision::F16
        );
    }
}

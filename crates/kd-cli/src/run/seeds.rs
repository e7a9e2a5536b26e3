//! The random streams of a run. libtorch's global generator (weight initialization, dropout)
//! is seeded afresh at the start of each phase from the run's `seed`, so that what one phase
//! draws cannot change another phase's numbers (a FitNets layer probe does not move the
//! teacher's dropout, say):
//!
//! | phase | global generator seed |
//! |---|---|
//! | prepare (layer probes) | `seed + 3` |
//! | teacher | `seed` |
//! | teacher logits | `seed + 4` |
//! | each student (distilled, scratch) | `seed + 1`: both start from the same weights |
//!
//! The data streams are the loaders' own, drawn from `(seed, epoch)` and never from the
//! global generator: the validation holdout and the teacher's batch order use `seed`, the
//! students' batch order `seed + 1`, the students' labelled subset `seed + 2`.

/// A phase of a run, by the generator stream it draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Prepare,
    Teacher,
    TeacherLogits,
    Student,
}

impl Stream {
    /// What the run's seed is offset by for this stream.
    fn offset(self) -> u64 {
        match self {
            Self::Teacher => 0,
            Self::Student => 1,
            Self::Prepare => 3,
            Self::TeacherLogits => 4,
        }
    }
}

/// Seeds libtorch's global generator (every device's) for `stream` of a run seeded `seed`.
pub(super) fn enter(stream: Stream, seed: u64) {
    tch::manual_seed(seed.wrapping_add(stream.offset()) as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_has_its_own_seed() {
        let streams = [
            Stream::Prepare,
            Stream::Teacher,
            Stream::TeacherLogits,
            Stream::Student,
        ];
        let draws: Vec<f64> = streams
            .iter()
            .map(|&s| {
                enter(s, 19);
                tch::Tensor::rand([1], (tch::Kind::Double, tch::Device::Cpu)).double_value(&[0])
            })
            .collect();
        for (i, a) in draws.iter().enumerate() {
            for b in &draws[i + 1..] {
                assert_ne!(a, b, "two streams share a seed: {draws:?}");
            }
        }
        // Entering a stream again restarts it.
        enter(Stream::Teacher, 19);
        let again =
            tch::Tensor::rand([1], (tch::Kind::Double, tch::Device::Cpu)).double_value(&[0]);
        assert_eq!(again, draws[1]);
    }
}

//! Every random stream of kd-experiment, in one table: each is derived from a seed and the
//! stream's name here, and no other code seeds libtorch's global generator or offsets a seed.
//!
//! libtorch's global generator (weight initialization, dropout) is seeded afresh at the
//! start of each phase of a run from the run's `seed`, so that what one phase draws cannot
//! change another phase's numbers (a FitNets layer probe does not move the teacher's
//! dropout, say); the data streams are values handed to the data crate, which draws from
//! `(value, epoch)` and never from the global generator.
//!
//! | stream | what draws from it | seed |
//! |---|---|---|
//! | [`Stream::Plan`] | the plan's FitNets layer probes (global generator) | `seed + 3` |
//! | [`Stream::Teacher`] | the teacher's initialization and dropout (global generator) | `seed` |
//! | [`Stream::TeacherLogits`] | caching the teacher's logits (global generator) | `seed + 4` |
//! | [`Stream::Student`] | each student's initialization and dropout (global generator): both students start from the same weights | `seed + 1` |
//! | [`Stream::Bench`] | `kd-cli bench`'s synthetic batches and models (global generator) | `0` |
//! | [`Stream::Doctor`] | `kd-cli doctor`'s models and inputs (global generator) | `0`, `1`, `99` by check |
//! | [`Data::Holdout`] | the validation images held out of the training split | `seed` |
//! | [`Data::TeacherBatches`] | the teacher's batch order | `seed` |
//! | [`Data::StudentBatches`] | the students' batch order | `seed + 1` |
//! | [`Data::LabelledSubset`] | the students' labelled subset (`student.train_images`) | `seed + 2` |
//! | [`Data::UnlabeledSubset`] | the distilled student's unlabeled images (`student.unlabeled_images`) | `seed + 3` |

/// A stream of libtorch's global generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The plan's FitNets layer probes: `seed + 3`.
    Plan,
    /// The teacher's initialization and dropout: `seed`.
    Teacher,
    /// Caching the teacher's logits: `seed + 4`.
    TeacherLogits,
    /// Each student's initialization and dropout (both start from the same weights):
    /// `seed + 1`.
    Student,
    /// `kd-cli bench`'s synthetic batches and models: `0`, whatever the run's seed.
    Bench,
    /// One of doctor's checks, by its own seed.
    Doctor(u64),
}

impl Stream {
    /// The generator seed of this stream for a run seeded `seed`.
    fn seed(self, seed: u64) -> u64 {
        match self {
            Self::Teacher => seed,
            Self::Student => seed.wrapping_add(1),
            Self::Plan => seed.wrapping_add(3),
            Self::TeacherLogits => seed.wrapping_add(4),
            Self::Bench => 0,
            Self::Doctor(check) => check,
        }
    }
}

/// Seeds libtorch's global generator (every device's) for `stream` of a run seeded `seed`
/// (`Bench` and `Doctor` ignore it).
///
/// ```
/// use kd_experiment::seeds::{enter, Stream};
/// use tch::{Device, Kind, Tensor};
///
/// let draw = || Tensor::rand([1], (Kind::Double, Device::Cpu)).double_value(&[0]);
/// enter(Stream::Teacher, 19);
/// let teacher = draw();
/// enter(Stream::Student, 19);
/// assert_ne!(draw(), teacher, "each stream has its own seed");
/// enter(Stream::Teacher, 19);
/// assert_eq!(draw(), teacher, "entering a stream again restarts it");
/// ```
pub fn enter(stream: Stream, seed: u64) {
    tch::manual_seed(stream.seed(seed) as i64);
}

/// A data stream: the seed handed to the data crate for one draw of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// The validation images held out of the training split: `seed`.
    Holdout,
    /// The teacher's batch order: `seed`.
    TeacherBatches,
    /// The students' batch order: `seed + 1`.
    StudentBatches,
    /// The students' labelled subset (`student.train_images`): `seed + 2`.
    LabelledSubset,
    /// The distilled student's unlabeled images (`student.unlabeled_images`): `seed + 3`.
    UnlabeledSubset,
}

/// The seed of data stream `data` for a run seeded `seed`.
///
/// ```
/// use kd_experiment::seeds::{data, Data};
///
/// assert_eq!(data(Data::TeacherBatches, 19), 19);
/// assert_eq!(data(Data::StudentBatches, 19), 20);
/// assert_eq!(data(Data::LabelledSubset, 19), 21);
/// assert_eq!(data(Data::UnlabeledSubset, u64::MAX), 2, "offsets wrap around");
/// ```
pub fn data(data: Data, seed: u64) -> u64 {
    match data {
        Data::Holdout | Data::TeacherBatches => seed,
        Data::StudentBatches => seed.wrapping_add(1),
        Data::LabelledSubset => seed.wrapping_add(2),
        Data::UnlabeledSubset => seed.wrapping_add(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_has_its_own_seed() {
        let streams = [
            Stream::Plan,
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

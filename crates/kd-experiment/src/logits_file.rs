//! Teacher outputs as a file (`kd-cli teach CONFIG --out logits.kdl`; `teacher.logits =
//! "logits.kdl"`): a teacher that lives elsewhere — a GPU box, a served model — teaches
//! through its logits, computed once. The file is a safetensors file (huggingface's format,
//! readable from Python with `safetensors.torch.load_file`) holding three tensors of `[n,
//! classes]` logits in dataset order — `train` (the distilled student's training images,
//! a transfer set's unlabeled ones included), `validation` and `test` — and, in its header,
//! what they belong to: `kd.format = "teacher-logits"`, `kd.version = "1"`, each split's
//! image count and SHA-256 (of its pixels, then its labels, as stored), the classes, the
//! cache dtype and the teacher (its description and file digest). A run reads the file
//! only when each of these matches its own data; otherwise the error names what differs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kd_data::ImageDataset;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

/// What the file's header says its value of `kd.format` is.
pub const FORMAT: &str = "teacher-logits";
const VERSION: &str = "1";
/// The splits, in the order they are checked.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];

/// A teacher's logits of a run's images.
#[derive(Debug)]
pub struct TeacherLogits {
    /// `train`, `validation`, `test`: `[n, classes]` each.
    pub logits: BTreeMap<String, Tensor>,
    /// The teacher, as the run that made the file describes it.
    pub teacher: String,
    /// The cache dtype the `train` and `validation` logits are stored in (`f32`, `bf16`,
    /// `f16`); `test` is float32.
    pub dtype: String,
}

/// The SHA-256 of a split: its pixels (row-major `[n, c, h, w]` bytes), then its labels.
pub fn split_digest(data: &ImageDataset) -> String {
    let mut hash = Sha256::new();
    match data.images().as_slice() {
        Some(pixels) => hash.update(pixels),
        None => hash.update(data.images().iter().copied().collect::<Vec<u8>>()),
    }
    hash.update(data.labels());
    format!("{:x}", hash.finalize())
}

/// The header entries that tie a file to `splits` (train, validation, test).
fn split_metadata(splits: [&ImageDataset; 3]) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    for (name, data) in SPLITS.iter().zip(splits) {
        meta.insert(format!("kd.{name}.images"), data.len().to_string());
        meta.insert(format!("kd.{name}.sha256"), split_digest(data));
    }
    meta
}

impl TeacherLogits {
    /// Writes the logits of `splits` (train, validation, test) to `path`, atomically.
    pub fn write(&self, path: &Path, splits: [&ImageDataset; 3]) -> Result<u64> {
        let mut meta = split_metadata(splits);
        meta.insert("kd.format".into(), FORMAT.into());
        meta.insert("kd.version".into(), VERSION.into());
        meta.insert("kd.teacher".into(), self.teacher.clone());
        meta.insert("kd.dtype".into(), self.dtype.clone());
        let classes = self.logits["test"].size()[1];
        meta.insert("kd.classes".into(), classes.to_string());
        let tensors: Vec<(String, Tensor)> = self
            .logits
            .iter()
            .map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu)))
            .collect();
        Ok(kd_models::tensor_file::write_tensors(
            path, &tensors, &meta,
        )?)
    }

    /// Reads the file at `path` for a run of `splits` (train, validation, test) and
    /// `classes`: an error names the file and what differs (another dataset, split, seed,
    /// transfer set or teacher's classes), or a file that is not one of these.
    pub fn read(path: &Path, splits: [&ImageDataset; 3], classes: usize) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read the teacher logits", path.display()))?;
        Self::parse(&bytes, path, splits, classes)
    }

    /// [`TeacherLogits::read`] of the file's bytes.
    pub fn parse(
        bytes: &[u8],
        path: &Path,
        splits: [&ImageDataset; 3],
        classes: usize,
    ) -> Result<Self> {
        let at = || format!("{}: not a teacher logits file of this run", path.display());
        let meta = kd_models::metadata::parse_metadata(bytes, path).with_context(at)?;
        let get = |key: &str| meta.get(key).map(String::as_str).unwrap_or("");
        if get("kd.format") != FORMAT || get("kd.version") != VERSION {
            bail!(
                "{}: expected a teacher logits file (kd.format = \"{FORMAT}\", version {VERSION}, written by `kd-cli teach`), got kd.format {:?}, version {:?}",
                path.display(),
                get("kd.format"),
                get("kd.version")
            );
        }
        let expected = split_metadata(splits);
        for (key, want) in &expected {
            let got = get(key);
            if got != want {
                bail!(
                    "{}: made for other images: its {key} is {got:?}, this run's {want:?} (another dataset, split, seed or transfer set)",
                    path.display()
                );
            }
        }
        let logits = kd_models::tensor_file::parse_tensors(bytes, path).with_context(at)?;
        for (name, data) in SPLITS.iter().zip(splits) {
            let shape = logits.get(*name).map(Tensor::size);
            if shape != Some(vec![data.len() as i64, classes as i64]) {
                bail!(
                    "{}: expected {name} logits of [{}, {classes}], got {shape:?}",
                    path.display(),
                    data.len()
                );
            }
        }
        if logits.values().any(|t| !t.is_floating_point()) {
            bail!("{}: expected floating-point logits", path.display());
        }
        Ok(Self {
            logits,
            teacher: get("kd.teacher").to_string(),
            dtype: get("kd.dtype").to_string(),
        })
    }

    /// Accuracy and mean cross-entropy of the `test` logits against `test`'s labels.
    pub fn test_score(&self, test: &ImageDataset) -> (f64, f64) {
        let logits = self.logits["test"].to_kind(Kind::Float);
        let labels: Vec<i64> = test.labels().iter().map(|&l| i64::from(l)).collect();
        let labels = Tensor::from_slice(&labels);
        let correct = logits.argmax(-1, false).eq_tensor(&labels);
        let accuracy = correct
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let loss = logits.cross_entropy_for_logits(&labels).double_value(&[]);
        (accuracy, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blank 1x2x2 images labelled 0 and 1 (the fuzz target's splits).
    fn blank() -> ImageDataset {
        let images = ndarray::Array4::<u8>::zeros((2, 1, 2, 2));
        ImageDataset::new(images, vec![0, 1], 2, Path::new("t")).unwrap()
    }

    #[test]
    fn a_written_file_reads_back_and_other_images_are_refused() {
        let (a, b) = (
            blank(),
            ImageDataset::new(
                ndarray::Array4::<u8>::ones((2, 1, 2, 2)),
                vec![0, 1],
                2,
                Path::new("t"),
            )
            .unwrap(),
        );
        let logits = |v: f32| Tensor::from_slice(&[v, -v, 0.5, 2.0]).view([2, 2]);
        let file = TeacherLogits {
            logits: SPLITS
                .iter()
                .zip([1.0, 2.0, 3.0])
                .map(|(s, v)| (s.to_string(), logits(v)))
                .collect(),
            teacher: "t".into(),
            dtype: "f32".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.kdl");
        file.write(&path, [&a, &a, &b]).unwrap();
        let back = TeacherLogits::read(&path, [&a, &a, &b], 2).unwrap();
        assert!(SPLITS
            .iter()
            .all(|s| back.logits[*s].equal(&file.logits[*s])));
        // Test rows [3, -3] and [0.5, 2], labels 0 and 1: both right; cross-entropy the
        // mean of ln(1 + e^-6) and ln(1 + e^-1.5).
        let (accuracy, loss) = back.test_score(&b);
        let expected = ((1.0 + (-6.0f64).exp()).ln() + (1.0 + (-1.5f64).exp()).ln()) / 2.0;
        assert_eq!(accuracy, 1.0);
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        let message = format!(
            "{:#}",
            TeacherLogits::read(&path, [&a, &b, &b], 2).unwrap_err()
        );
        assert!(message.contains("its kd.validation.sha256 is"), "{message}");
        let message = format!(
            "{:#}",
            TeacherLogits::read(&path, [&a, &a, &b], 3).unwrap_err()
        );
        assert!(
            message.contains("expected train logits of [2, 3]"),
            "{message}"
        );
    }

    #[test]
    fn the_fuzz_corpus_file_written_from_the_format_alone_reads_and_every_file_replays() {
        // fuzz/corpus/teacher_logits/two-image-splits.kdl was written by a Python script from
        // the format described above (header JSON, metadata, sha256 of pixels then labels),
        // not by kd: kd reads it. The rest of the corpus and any regression must not panic.
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let seed = fuzz.join("corpus/teacher_logits/two-image-splits.kdl");
        let (t, v, s) = (blank(), blank(), blank());
        let file = TeacherLogits::read(&seed, [&t, &v, &s], 2).unwrap();
        assert_eq!(file.logits["train"].double_value(&[0, 0]), 2.0);
        for file in kd_testkit::fuzz_inputs(env!("CARGO_MANIFEST_DIR"), "teacher_logits") {
            let bytes = std::fs::read(file).unwrap();
            let _ = TeacherLogits::parse(&bytes, Path::new("f"), [&t, &v, &s], 2);
        }
    }
}

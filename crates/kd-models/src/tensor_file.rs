//! Safetensors files (huggingface/safetensors format) written atomically: the tensors go to a
//! temporary file beside the target, which is synced to disk and then renamed over it, so a
//! crash or a full disk leaves either the old file or the new one, never a mix.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use tch::Tensor;

use crate::error::{ModelError, Result};

/// Writes `tensors` (each made row-major) with `metadata` in the header to `path`,
/// atomically; returns the size of the file in bytes.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<u64> {
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        // The safetensors crate would panic on it.
        return Err(ModelError::InvalidConfig {
            key: path.display().to_string(),
            expected: "one tensor per name".into(),
            got: format!("two tensors named {:?}", pair[0]),
        });
    }
    // tch picks nothing from the extension here, but keeping `.safetensors` last makes a
    // leftover temporary file recognisable.
    let tmp = path.with_extension("partial.safetensors");
    let result = write_then_rename(path, &tmp, tensors, metadata);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<u64> {
    let io_at = |at: &Path| {
        let at = at.to_path_buf();
        move |cause| ModelError::Io { path: at, cause }
    };
    // safetensors stores row-major data: channels-last tensors are written NCHW.
    let row_major: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(name, t)| (name.as_str(), t.contiguous()))
        .collect();
    Tensor::write_safetensors(&row_major, tmp).map_err(|source| ModelError::Weights {
        path: tmp.to_path_buf(),
        source,
    })?;
    if !metadata.is_empty() {
        let bytes = std::fs::read(tmp).map_err(io_at(tmp))?;
        let bytes = crate::metadata::with_metadata(tmp, &bytes, metadata)?;
        std::fs::write(tmp, bytes).map_err(io_at(tmp))?;
    }
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_at(tmp))?;
    std::fs::rename(tmp, path).map_err(io_at(path))?;
    // The rename itself is durable once the directory is synced.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Ok(dir) = File::open(dir.unwrap_or(Path::new("."))) {
        let _ = dir.sync_all();
    }
    Ok(std::fs::metadata(path).map_err(io_at(path))?.len())
}

/// Every tensor of the safetensors file at `path`, by name.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|cause| ModelError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_tensors(&bytes, path)
}

/// Every tensor of a safetensors file's bytes, by name; `path` is named in errors. The
/// header is checked whole (offsets contiguous, sizes matching shapes and dtypes, the data
/// exactly filling the file) before any tensor is built.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let path = path.to_path_buf();
    let file =
        safetensors::SafeTensors::deserialize(bytes).map_err(|cause| ModelError::Safetensors {
            path: path.clone(),
            cause,
        })?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| match Tensor::try_from(view) {
            Ok(tensor) => Ok((name, tensor)),
            Err(cause) => Err(ModelError::TensorData {
                path: path.clone(),
                name,
                cause,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn round_trips_tensors_and_metadata_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
        // A transposed view: written row-major, read back equal.
        let b = Tensor::arange(6, (Kind::Int64, Device::Cpu))
            .reshape([3, 2])
            .transpose(0, 1);
        let meta = BTreeMap::from([("kd.test".to_string(), "yes".to_string())]);
        let bytes = write_tensors(
            &path,
            &[
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            &meta,
        )
        .unwrap();
        assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
        let back = read_tensors(&path).unwrap();
        assert!(back["a"].equal(&a) && back["b"].equal(&b));
        assert_eq!(crate::metadata::read_metadata(&path).unwrap(), meta);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the target file remains");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let one = Tensor::ones([2], (Kind::Float, Device::Cpu));
        write_tensors(
            &path,
            &[("w".into(), one.shallow_clone())],
            &BTreeMap::new(),
        )
        .unwrap();
        // A complex tensor: safetensors has no dtype for it, so the write fails.
        let complex = Tensor::zeros([2], (Kind::ComplexFloat, Device::Cpu));
        let err = write_tensors(&path, &[("w".into(), complex)], &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("t.partial.safetensors"), "{err}");
        let kept = read_tensors(&path).unwrap();
        assert!(kept["w"].equal(&one), "old file intact");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file is removed");
    }

    #[test]
    fn two_tensors_under_one_name_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let one = Tensor::ones([2], (Kind::Float, Device::Cpu));
        let err = write_tensors(
            &path,
            &[
                ("w".into(), one.shallow_clone()),
                ("w".into(), one.zeros_like()),
            ],
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("two tensors named \"w\""), "{err}");
        assert!(!path.exists());
    }
}

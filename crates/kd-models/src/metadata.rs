//! String metadata in a safetensors file (the format's `__metadata__` header entry,
//! huggingface/safetensors `docs/metadata_parsing`): kd records there what a weights file
//! is — the architecture config, input shape, classes and preprocessing — so that `eval`
//! and `export` need no run config.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON (padded with spaces
//! to a multiple of 8), then the tensor data, whose offsets are relative to the end of the
//! header; replacing the header therefore leaves the data untouched.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::error::{ModelError, Result};

fn invalid(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::ModelFile {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Splits a safetensors file into its header (as JSON) and the data after it.
fn split(path: &Path, bytes: &[u8]) -> Result<(serde_json::Map<String, serde_json::Value>, usize)> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| {
            invalid(
                path,
                "not a safetensors file (shorter than its 8-byte header length)",
            )
        })?;
    let header = bytes.get(8..8usize.saturating_add(len)).ok_or_else(|| {
        invalid(
            path,
            format!("not a safetensors file (its first 8 bytes announce a header of {len} bytes, longer than the file)"),
        )
    })?;
    let json: serde_json::Value = serde_json::from_slice(header).map_err(|e| {
        invalid(
            path,
            format!("not a safetensors file (header is not JSON: {e})"),
        )
    })?;
    match json {
        serde_json::Value::Object(map) => Ok((map, 8 + len)),
        _ => Err(invalid(
            path,
            "not a safetensors file (header is not a JSON object)",
        )),
    }
}

/// `bytes` (a whole safetensors file) with `metadata` as its `__metadata__`.
pub fn with_metadata(
    path: &Path,
    bytes: &[u8],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let (mut header, data_start) = split(path, bytes)?;
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).expect("strings serialize"),
    );
    let mut json = serde_json::to_vec(&header).expect("JSON serializes");
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - data_start);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[data_start..]);
    Ok(out)
}

/// The `__metadata__` of the safetensors file at `path` (empty if it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    // Only the length and the header are read, not the tensors after them.
    let io = |cause| ModelError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut prefix = Vec::new();
    (&mut file).take(8).read_to_end(&mut prefix).map_err(io)?;
    if let Ok(len) = <[u8; 8]>::try_from(prefix.as_slice()) {
        file.take(u64::from_le_bytes(len))
            .read_to_end(&mut prefix)
            .map_err(io)?;
    }
    parse_metadata(&prefix, path)
}

/// The `__metadata__` of a safetensors file from its leading bytes (the length and the
/// header suffice); `path` is named in errors.
pub fn parse_metadata(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
    let (header, _) = split(path, bytes)?;
    match header.get("__metadata__") {
        None => Ok(BTreeMap::new()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|cause| ModelError::Metadata {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// The metadata key under which a kd model file records its architecture (a
/// `ModelConfig` as JSON; [`crate::model::ModelConfig::recorded_in`] reads it).
pub const MODEL_KEY: &str = "kd.model";

//! A teacher's input contract carried by its ONNX file: `metadata_props` entries named
//! `kd.input.` + a key of `[teacher.input]` (`mean`, `std`, `image_size`, `channels`,
//! `resize`), each value JSON (`"[0.485, 0.456, 0.406]"`, `"224"`) or, for `resize`, the
//! bare word. Written with `onnx.helper.set_model_props(model, {"kd.input.mean": ...})`.
//! A key the config's `[teacher.input]` sets wins over the file's; the file's input shape
//! supplies whatever neither states.

use std::path::Path;

use kd_models::TeacherInput;

use crate::error::{OnnxError, Result};

/// The prefix of the metadata keys that state the contract.
pub const PREFIX: &str = "kd.input.";

/// The contract the file's `metadata` states (defaults where it states nothing); an error
/// names the file and the first entry that is not a key and value of `[teacher.input]`.
pub fn from_metadata(path: &Path, metadata: &[(String, String)]) -> Result<TeacherInput> {
    let mut fields = serde_json::Map::new();
    for (key, value) in metadata {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let parsed = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
        let alone = serde_json::Map::from_iter([(name.to_string(), parsed.clone())]);
        serde_json::from_value::<TeacherInput>(alone.into()).map_err(|e| OnnxError::Model {
            path: path.to_path_buf(),
            detail: format!(
                "metadata {key} = {value:?}: expected a key and value of [teacher.input] (mean, std: lists of numbers; image_size, channels: numbers; resize: bilinear or nearest): {e}"
            ),
        })?;
        fields.insert(name.to_string(), parsed);
    }
    Ok(serde_json::from_value(fields.into()).expect("each key read alone above"))
}

/// `config` with each key it leaves at its default taken from `file`.
pub fn merge(config: &TeacherInput, file: &TeacherInput) -> TeacherInput {
    let default = TeacherInput::default();
    let pick = |set: bool| if set { config } else { file };
    TeacherInput {
        mean: pick(config.mean != default.mean).mean.clone(),
        std: pick(config.std != default.std).std.clone(),
        image_size: pick(config.image_size != default.image_size).image_size,
        channels: pick(config.channels != default.channels).channels,
        resize: pick(config.resize != default.resize).resize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kd_models::Resize;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_files_contract_fills_what_the_config_leaves_unset() {
        let meta = props(&[
            ("kd.format", "float32"),
            ("kd.input.mean", "[0.5, 0.5, 0.5]"),
            ("kd.input.std", "[0.25, 0.25, 0.25]"),
            ("kd.input.image_size", "32"),
            ("kd.input.resize", "nearest"),
        ]);
        let file = from_metadata(Path::new("t.onnx"), &meta).unwrap();
        assert_eq!((file.image_size, file.resize), (32, Resize::Nearest));
        let config = TeacherInput {
            image_size: 40,
            ..Default::default()
        };
        let merged = merge(&config, &file);
        assert_eq!(merged.image_size, 40, "the config's key wins");
        assert_eq!((merged.mean, merged.std), (file.mean, file.std));

        for (key, value) in [("kd.input.men", "[0.5]"), ("kd.input.image_size", "big")] {
            let bad = props(&[("kd.input.mean", "[0.5]"), (key, value)]);
            let message = from_metadata(Path::new("t.onnx"), &bad)
                .unwrap_err()
                .to_string();
            let named = format!("metadata {key} = {value:?}: expected a key and value");
            assert!(
                message.contains("t.onnx") && message.contains(&named),
                "{message}"
            );
        }
    }
}

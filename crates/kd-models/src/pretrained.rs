//! Loading published weights into part of a model by parameter name, as PyTorch's
//! `load_state_dict(strict=True)` does for one sub-module: every model parameter under the
//! prefix must be in the file with the same shape, and every file tensor under the prefix
//! must belong to the model — a file of another architecture is refused, never half-loaded.
//!
//! One adaptation is made: a first convolution pretrained on RGB (`[o, 3, k, k]`) loads into
//! a model for 1-channel inputs (`[o, 1, k, k]`) as the sum over its input channels, which
//! computes exactly what the RGB kernel computes on a gray image copied to three channels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{nn, Tensor};

use crate::error::{ModelError, Result};

/// What [`load_prefix`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The file the tensors came from.
    pub path: PathBuf,
    /// Number of tensors copied into the model.
    pub tensors: usize,
    /// Number of scalar parameters copied.
    pub parameters: usize,
    /// Tensors summed over RGB input channels for a 1-channel model.
    pub adapted: Vec<String>,
}

/// Copies every tensor of the safetensors file `path` whose name starts with `prefix` into
/// the variable of `vs` with the same name (converting the dtype to the variable's).
pub fn load_prefix(vs: &nn::VarStore, path: &Path, prefix: &str) -> Result<Loaded> {
    let mismatch = |detail: String| ModelError::Pretrained {
        path: path.to_path_buf(),
        detail,
    };
    let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|source| ModelError::Weights {
            path: path.to_path_buf(),
            source,
        })?
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    let vars: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    if file.is_empty() {
        return Err(mismatch(format!(
            "holds no tensor named {prefix}* (expected {} of them)",
            vars.len()
        )));
    }
    if let Some(extra) = file.keys().find(|k| !vars.contains_key(*k)) {
        return Err(mismatch(format!(
            "tensor {extra} has no counterpart in the model: the file holds {} tensors under {prefix}, the model {} (weights of another architecture?)",
            file.len(),
            vars.len()
        )));
    }
    let mut loaded = Loaded {
        path: path.to_path_buf(),
        tensors: 0,
        parameters: 0,
        adapted: Vec::new(),
    };
    for (name, var) in &vars {
        let Some(src) = file.get(name) else {
            return Err(mismatch(format!("missing tensor {name}")));
        };
        let (want, got) = (var.size(), src.size());
        let src = if want == got {
            src.shallow_clone()
        } else if is_rgb_to_gray(&want, &got) {
            loaded.adapted.push(name.clone());
            src.sum_dim_intlist([1i64].as_slice(), true, src.kind())
        } else {
            return Err(mismatch(format!(
                "tensor {name}: expected shape {want:?}, got {got:?}"
            )));
        };
        if !src.is_floating_point() {
            return Err(mismatch(format!(
                "tensor {name}: expected floating-point values, got {:?}",
                src.kind()
            )));
        }
        tch::no_grad(|| {
            let mut var = var.shallow_clone();
            var.copy_(&src.to_kind(var.kind()).to_device(var.device()));
        });
        loaded.tensors += 1;
        loaded.parameters += var.numel();
    }
    Ok(loaded)
}

/// A 4-d kernel `[o, 3, k, k]` offered for `[o, 1, k, k]`.
fn is_rgb_to_gray(want: &[i64], got: &[i64]) -> bool {
    want.len() == 4 && got.len() == 4 && want[1] == 1 && got[1] == 3 && {
        let (w, g) = (want, got);
        w[0] == g[0] && w[2..] == g[2..]
    }
}

//! A network's variables by name: the prefix of auxiliary ones (trained with a model, never
//! saved with it) and copying named tensors into a `VarStore`, checked first.

use std::collections::BTreeMap;

use tch::{nn, Tensor};

/// Name prefix of auxiliary parameters that train with a model but are not part of it (a
/// FitNets regressor): not saved, not counted.
pub const AUX_PREFIX: &str = "aux.";

/// Copies `tensors` into the variables of `vs` ([`crate::Network::copy_from`]);
/// `architecture` names what the tensors should be the weights of, in the error for a
/// missing one.
pub(crate) fn copy_variables(
    vs: &nn::VarStore,
    tensors: &BTreeMap<String, Tensor>,
    with_aux: bool,
    architecture: Option<&str>,
) -> std::result::Result<(), String> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| with_aux || !name.starts_with(AUX_PREFIX))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in &vars {
        let t = tensors.get(name).ok_or_else(|| match architecture {
            Some(a) => format!("no tensor {name:?} (is it a {a} model file?)"),
            None => format!("no tensor {name:?} (is it this network's file?)"),
        })?;
        check_same(name, t, var)?;
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            var.copy_(&tensors[&name]);
        }
    });
    Ok(())
}

/// Copies each of `tensors` into the variable of `vs` of the same name, after checking that
/// every one is there with its shape and dtype; on a mismatch nothing is copied.
pub(crate) fn copy_named(
    vs: &nn::VarStore,
    tensors: &BTreeMap<String, Tensor>,
) -> std::result::Result<(), String> {
    let vars = vs.variables();
    for (name, t) in tensors {
        let var = vars
            .get(name)
            .ok_or_else(|| format!("no variable {name:?}"))?;
        check_same(name, t, var)?;
    }
    tch::no_grad(|| {
        for (name, t) in tensors {
            let mut var = vars[name].shallow_clone();
            var.copy_(t);
        }
    });
    Ok(())
}

/// Whether `t` can be copied into the variable `var` named `name`: same dtype and shape.
fn check_same(name: &str, t: &Tensor, var: &Tensor) -> std::result::Result<(), String> {
    if t.kind() != var.kind() {
        return Err(format!(
            "tensor {name:?} is {:?}, the model's is {:?}",
            t.kind(),
            var.kind()
        ));
    }
    if t.size() != var.size() {
        return Err(format!(
            "tensor {name:?} has shape {:?}, the model's {:?} (another architecture?)",
            t.size(),
            var.size()
        ));
    }
    Ok(())
}

/// Writes the variables of `vs` (but auxiliary ones, under [`AUX_PREFIX`]) in name order to a
/// safetensors file at `path` with `metadata`; returns its size in bytes.
pub(crate) fn save_variables(
    vs: &nn::VarStore,
    path: &std::path::Path,
    metadata: &BTreeMap<String, String>,
) -> crate::Result<u64> {
    let mut tensors: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| !name.starts_with(AUX_PREFIX))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    crate::tensor_file::write_tensors(path, &tensors, metadata)
}

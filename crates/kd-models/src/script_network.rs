//! [`ScriptNetwork`]: a module saved by PyTorch's `torch.jit.save` (traced or scripted) as a
//! [`Network`] kd trains — the student a PyTorch user already has. Its parameters and
//! buffers become the variables of a `VarStore`, named as in the module's `state_dict`
//! (`layer1.0.bn1.running_mean`) and sharing storage with the module: Adam steps them,
//! checkpoints and best-weights restores copy into them, and [`ScriptNetwork::save_module`]
//! writes the trained module back as TorchScript that PyTorch loads. Batch-norm statistics
//! are buffers, so they are checkpointed and restored with the weights.
//!
//! Parameters with `requires_grad` false in the file stay frozen. The forward pass runs in
//! float32, with training behaviour (dropout, batch statistics) when asked for, through
//! TorchScript's interpreter without its graph optimizations: every step runs the same
//! operations, as PyTorch's eager mode would, so a resumed fit ends where an uninterrupted
//! one does.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kd_sys::script_module::ScriptModule;
use tch::{nn, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::network::Network;
use crate::torchscript::first_line;

/// A TorchScript module kd can train (see the module docs).
///
/// ```no_run
/// use kd_models::{Network, ScriptNetwork};
/// use std::path::Path;
///
/// let student = ScriptNetwork::load(Path::new("student.pt"), tch::Device::Cpu)?;
/// println!("{} variables", student.var_store().variables().len());
/// // ... train it with kd_train::Learner, then:
/// student.save_module(Path::new("student-distilled.pt"))?;
/// # Ok::<(), kd_models::ModelError>(())
/// ```
#[derive(Debug)]
pub struct ScriptNetwork {
    vs: nn::VarStore,
    /// The module and whether it is in training mode.
    module: Mutex<(ScriptModule, bool)>,
    path: PathBuf,
}

impl ScriptNetwork {
    /// Loads the TorchScript module at `path` onto `device`; an error names the file.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let file_error = |detail: String| ModelError::ModelFile {
            path: path.to_path_buf(),
            detail,
        };
        let mut module = ScriptModule::load(path, device).map_err(|e| {
            file_error(format!(
                "not a TorchScript module (save one with torch.jit.save(torch.jit.script(model), path)): {}",
                first_line(&e.0)
            ))
        })?;
        module
            .set_training(false)
            .map_err(|e| file_error(e.to_string()))?;
        let vs = nn::VarStore::new(device);
        let parameters = module
            .named_parameters()
            .map_err(|e| file_error(e.to_string()))?;
        let buffers = module
            .named_buffers()
            .map_err(|e| file_error(e.to_string()))?;
        for (name, tensor) in parameters {
            let trainable = tensor.requires_grad();
            add_variable(&vs, &name, tensor, trainable);
        }
        for (name, tensor) in buffers {
            add_variable(&vs, &name, tensor, false);
        }
        Ok(Self {
            vs,
            module: Mutex::new((module, false)),
            path: path.to_path_buf(),
        })
    }

    /// Writes the module with its current weights and buffers as TorchScript (atomically:
    /// a temporary file beside `path`, renamed over it).
    pub fn save_module(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("partial.pt");
        let saved = self.lock().0.save(&tmp);
        let renamed = saved
            .map_err(|e| ModelError::ModelFile {
                path: path.to_path_buf(),
                detail: format!("cannot write TorchScript: {e}"),
            })
            .and_then(|()| {
                std::fs::rename(&tmp, path).map_err(|cause| ModelError::Io {
                    path: path.to_path_buf(),
                    cause,
                })
            });
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (ScriptModule, bool)> {
        self.module.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `tensor` to `vs` under its `state_dict` name (a dotted path: `vs.root() / "layer1" /
/// "0"` and then the last part), keeping its storage.
fn add_variable(vs: &nn::VarStore, name: &str, tensor: Tensor, trainable: bool) {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or(name);
    let path = parts.into_iter().fold(vs.root(), |p, part| p / part);
    // `add` keeps the tensor (a shallow handle, not a copy) and registers it as trainable
    // (requiring gradients) or not.
    let _ = path.add(last, tensor, trainable);
}

impl Network for ScriptNetwork {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The module's `forward` (a failure — a module that rejects the input shape — panics
    /// with libtorch's message, as a tch module's would).
    fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        let mut guard = self.lock();
        let (module, training) = &mut *guard;
        if *training != train {
            module
                .set_training(train)
                .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
            *training = train;
        }
        module
            .forward(images)
            .unwrap_or_else(|e| panic!("{}: {}", self.path.display(), first_line(&e.0)))
    }
}

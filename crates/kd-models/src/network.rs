//! [`Network`]: what kd's training loop, its checkpoints and the `Distiller` need of a
//! student — its variables and a forward pass — so that they train any tch network: kd's
//! own [`Model`]s, and a user's `nn::ModuleT` with the `VarStore` it was built in
//! ([`TchNetwork`]), as Keras' `fit` trains any `Model` and burn's learner any module.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Tensor};

use crate::model::Model;
use crate::{Precision, Result};

/// A network kd can train and checkpoint.
///
/// ```
/// use kd_models::Network;
/// use tch::{nn, nn::Module, Device, Kind, Tensor};
///
/// /// Logistic regression on flattened images, with its own variables.
/// struct Linear {
///     vs: nn::VarStore,
///     fc: nn::Linear,
/// }
///
/// impl Network for Linear {
///     fn var_store(&self) -> &nn::VarStore {
///         &self.vs
///     }
///     fn forward_t(&self, images: &Tensor, _train: bool) -> Tensor {
///         self.fc.forward(&images.flatten(1, -1))
///     }
/// }
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let fc = nn::linear(vs.root() / "fc", 4, 3, Default::default());
/// let net = Linear { vs, fc };
/// let x = Tensor::ones([2, 1, 2, 2], (Kind::Float, Device::Cpu));
/// assert_eq!(net.forward_t(&x, false).size(), [2, 3]);
/// // Saving, copying and precision come with the trait.
/// let dir = std::env::temp_dir().join(format!("kd-network-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let bytes = net.save_with_metadata(&dir.join("linear.safetensors"), &Default::default())?;
/// assert!(bytes > 4 * 3 * 4);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Network {
    /// The variables: the parameters Adam trains and the buffers checkpoints keep.
    fn var_store(&self) -> &nn::VarStore;

    /// Float32 logits `[b, classes]` for images `[b, c, h, w]`; `train` selects training
    /// behaviour (dropout, batch statistics).
    fn forward_t(&self, images: &Tensor, train: bool) -> Tensor;

    /// The logits and the outputs of the layers named in `names` (FitNets hints); `None`
    /// where a name is not a layer. A network without named layers has none.
    fn forward_features(
        &self,
        _images: &Tensor,
        _train: bool,
        _names: &[&str],
    ) -> Option<(Tensor, Vec<Tensor>)> {
        None
    }

    /// The arithmetic of the forward pass (float32 unless the network says otherwise).
    fn precision(&self) -> Precision {
        Precision::F32
    }

    /// Puts `tensors` (by variable name) into the variables, auxiliary ones too if
    /// `with_aux`; checks every name, dtype and shape first, and changes nothing on a
    /// mismatch, which the error names.
    fn copy_from(
        &self,
        tensors: &BTreeMap<String, Tensor>,
        with_aux: bool,
    ) -> std::result::Result<(), String> {
        crate::variables::copy_variables(self.var_store(), tensors, with_aux, None)
    }

    /// Writes the variables (but auxiliary ones, under [`crate::variables::AUX_PREFIX`]) in name order to a
    /// safetensors file with `metadata`; returns its size in bytes.
    fn save_with_metadata(&self, path: &Path, metadata: &BTreeMap<String, String>) -> Result<u64> {
        crate::variables::save_variables(self.var_store(), path, metadata)
    }
}

impl Network for Model {
    fn var_store(&self) -> &nn::VarStore {
        Model::var_store(self)
    }

    fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        Model::forward_t(self, images, train)
    }

    fn forward_features(
        &self,
        images: &Tensor,
        train: bool,
        names: &[&str],
    ) -> Option<(Tensor, Vec<Tensor>)> {
        Model::forward_features(self, images, train, names)
    }

    fn precision(&self) -> Precision {
        Model::precision(self)
    }

    fn copy_from(
        &self,
        tensors: &BTreeMap<String, Tensor>,
        with_aux: bool,
    ) -> std::result::Result<(), String> {
        Model::copy_from(self, tensors, with_aux)
    }

    fn save_with_metadata(&self, path: &Path, metadata: &BTreeMap<String, String>) -> Result<u64> {
        Model::save_with_metadata(self, path, metadata)
    }
}

/// A user's tch module and the `VarStore` its parameters were created in, as a
/// [`Network`]: float32, no named layers.
///
/// ```
/// use kd_models::network::{Network, TchNetwork};
/// use tch::{nn, nn::Module, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let p = vs.root();
/// let net = nn::seq()
///     .add_fn(|x| x.flatten(1, -1))
///     .add(nn::linear(&p / "fc", 28 * 28, 10, Default::default()));
/// let student = TchNetwork::new(vs, nn::func_t(move |x, _train| net.forward(x)));
/// let logits = student.forward_t(&Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu)), true);
/// assert_eq!(logits.size(), [2, 10]);
/// assert_eq!(student.var_store().variables().len(), 2);
/// ```
#[derive(Debug)]
pub struct TchNetwork<M> {
    vs: nn::VarStore,
    module: M,
}

impl<M: nn::ModuleT> TchNetwork<M> {
    /// `module`, whose parameters live in `vs`.
    pub fn new(vs: nn::VarStore, module: M) -> Self {
        Self { vs, module }
    }

    /// The module.
    pub fn module(&self) -> &M {
        &self.module
    }
}

impl<M: nn::ModuleT> Network for TchNetwork<M> {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.module.forward_t(images, train)
    }
}

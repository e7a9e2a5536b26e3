//! A sequential network whose layers carry names and types, like a PyTorch `nn.Sequential`
//! inside named modules: the names are the prefixes of the parameters' state-dict keys
//! (`features.0` owns `features.0.weight`), which lets [`crate::summary`] attribute
//! parameters to layers and lets callers read intermediate features by name.

use std::fmt;

use tch::nn::{self, ModuleT};
use tch::Tensor;

/// One named layer.
pub struct Layer {
    /// State-dict prefix, e.g. `features.0`.
    pub name: String,
    /// Layer type for summaries, e.g. `Conv2d`.
    pub kind: &'static str,
    module: Box<dyn ModuleT>,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.kind)
    }
}

/// A module run in inference mode whatever the caller's mode ([`Sequential::frozen`]).
#[derive(Debug)]
struct InferenceOnly(Box<dyn ModuleT>);

impl ModuleT for InferenceOnly {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.0.forward_t(x, false)
    }
}

/// Layers applied one after another.
#[derive(Debug, Default)]
pub struct Sequential {
    layers: Vec<Layer>,
}

impl Sequential {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer with parameters (or any [`ModuleT`]).
    pub fn push(
        &mut self,
        name: impl Into<String>,
        kind: &'static str,
        module: impl ModuleT + 'static,
    ) {
        self.layers.push(Layer {
            name: name.into(),
            kind,
            module: Box::new(module),
        });
    }

    /// Appends a parameter-free layer computing `f`.
    pub fn push_fn(
        &mut self,
        name: impl Into<String>,
        kind: &'static str,
        f: impl Fn(&Tensor) -> Tensor + Send + 'static,
    ) {
        self.push(name, kind, nn::func(f));
    }

    /// Appends a parameter-free layer whose behaviour depends on training mode.
    pub fn push_fn_t(
        &mut self,
        name: impl Into<String>,
        kind: &'static str,
        f: impl Fn(&Tensor, bool) -> Tensor + Send + 'static,
    ) {
        self.push(name, kind, nn::func_t(f));
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Splits the network after the layer named `name`: `self` keeps the layers up to and
    /// including it, the rest is returned; `None` (and nothing changed) if no layer has that
    /// name.
    pub fn split_after(&mut self, name: &str) -> Option<Sequential> {
        let at = self.layers.iter().position(|l| l.name == name)?;
        Some(Sequential {
            layers: self.layers.split_off(at + 1),
        })
    }

    /// Appends every layer of `other`, in order.
    pub fn extend(&mut self, other: Sequential) {
        self.layers.extend(other.layers);
    }

    /// The same layers renamed `{prefix}.{name}`, each always run in inference mode (batch
    /// norm on its running statistics, no dropout) whatever it is asked: a frozen part of
    /// another network (its variables' gradients are the caller's to turn off).
    pub fn inference_only(self, prefix: &str) -> Sequential {
        let layers = self
            .layers
            .into_iter()
            .map(|l| Layer {
                name: format!("{prefix}.{}", l.name),
                kind: l.kind,
                module: Box::new(InferenceOnly(l.module)),
            })
            .collect();
        Sequential { layers }
    }

    /// Runs every layer on `x`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_each(x, train, |_, _| {})
    }

    /// Runs the layers up to and including the one named `name` and returns its output;
    /// `None` if no layer has that name.
    pub fn forward_until(&self, x: &Tensor, train: bool, name: &str) -> Option<Tensor> {
        let mut x = x.shallow_clone();
        for layer in &self.layers {
            x = layer.module.forward_t(&x, train);
            if layer.name == name {
                return Some(x);
            }
        }
        None
    }

    /// Runs every layer on `x`, calling `visit(layer, output)` after each one.
    pub fn forward_each(
        &self,
        x: &Tensor,
        train: bool,
        mut visit: impl FnMut(&Layer, &Tensor),
    ) -> Tensor {
        let mut x = x.shallow_clone();
        for layer in &self.layers {
            x = layer.module.forward_t(&x, train);
            visit(layer, &x);
        }
        x
    }
}

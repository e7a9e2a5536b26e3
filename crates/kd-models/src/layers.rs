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

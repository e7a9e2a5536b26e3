//! `kd-cli export MODEL --format torchscript --out PATH`: a TorchScript file that Python's
//! `torch.jit.load` (or libtorch's `torch::jit::load`) runs without kd. The module is traced
//! (`torch.jit.trace` semantics) from the saved model in inference mode with its
//! preprocessing built in, so it takes float images `[b, c, h, w]` in [0, 1] at the
//! dataset's native size (e.g. `[b, 1, 28, 28]` for Fashion-MNIST) and returns logits
//! `[b, classes]`; the batch size is free.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kd_data::TransformConfig;
use tch::{CModule, Device, Kind, Tensor};

/// Writes the TorchScript module for the model at `model_path` to `out`, atomically.
pub fn export(model_path: &Path, format: &str, out: &Path) -> Result<()> {
    if format != "torchscript" {
        bail!("--format: expected torchscript or onnx, got {format:?}");
    }
    let (mut model, info) = crate::saved_model::open(model_path, Device::Cpu)?;
    // Frozen weights become constants of the traced graph.
    model.freeze();
    let [c, h, w] = info.input_shape.map(|d| d as i64);
    let example = Tensor::rand([2, c, h, w], (Kind::Float, Device::Cpu));
    // Tensors made inside the trace from host data would be recorded as the zeros tch
    // allocates before copying into them; the normalization is built outside and enters
    // the graph as constants.
    let pad_only = TransformConfig {
        mean: Vec::new(),
        std: Vec::new(),
        ..info.transform.clone()
    };
    let channel = |v: &[f64]| {
        Tensor::from_slice(v)
            .to_kind(Kind::Float)
            .view([1, c, 1, 1])
    };
    let normalize = (!info.transform.mean.is_empty())
        .then(|| (channel(&info.transform.mean), channel(&info.transform.std)));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("kd_model", "forward", &[example], &mut |inputs| {
            let mut x = pad_only.apply_unit(&inputs[0]);
            if let Some((mean, std)) = &normalize {
                x = (x - mean) / std;
            }
            vec![model.forward_t(&x, false)]
        })
    })
    .with_context(|| format!("{}: cannot trace the model", model_path.display()))?;
    if out.file_name().is_none() {
        bail!("--out: expected a file path, got {}", out.display());
    }
    crate::atomic::write_atomic_with(out, |tmp| {
        module
            .save(tmp)
            .with_context(|| format!("{}: cannot write", out.display()))
    })
}

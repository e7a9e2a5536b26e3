//! ONNX files run in Rust with tract (sonos/tract: pure Rust, built from source, no prebuilt
//! binaries to download), for `kd-cli eval` and `predict` on exported models. The file's
//! header — its metadata and its input shape — is read with the same protobuf types the
//! exporter writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    tvec, Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TypedRunnableModel,
};

use crate::error::{OnnxError, Result};

/// What an ONNX file's header says.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxHeader {
    /// `metadata_props`, in file order.
    pub metadata: Vec<(String, String)>,
    /// The first input's dimensions after the batch (`[c, h, w]` for kd's files).
    pub input_shape: Vec<i64>,
    pub producer: String,
    pub opset: i64,
    /// The bytes of the constant tensors (weights, scales), without the graph around them.
    pub tensor_bytes: u64,
    /// The elements of the constant tensors (the weights' count).
    pub tensor_elements: u64,
}

fn model_error(path: &Path, detail: impl Into<String>) -> OnnxError {
    OnnxError::Model {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads the header of the ONNX file at `path`; an error names a file that is not ONNX.
pub fn read_header(path: &Path) -> Result<OnnxHeader> {
    let bytes = std::fs::read(path).map_err(|cause| OnnxError::Io {
        path: PathBuf::from(path),
        cause,
    })?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| model_error(path, format!("not an ONNX model ({e})")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| model_error(path, "not an ONNX model (no graph)"))?;
    check_names(path, graph)?;
    check_operators(path, graph)?;
    let input = graph
        .input
        .first()
        .and_then(|i| i.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(TypeValue::TensorType(t)) => t.shape.as_ref(),
            _ => None,
        })
        .ok_or_else(|| model_error(path, "the model declares no tensor input"))?;
    let input_shape = input
        .dim
        .iter()
        .skip(1)
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) => Ok(v),
            _ => Err(model_error(
                path,
                "the input's dimensions after the batch must be fixed numbers",
            )),
        })
        .collect::<Result<_>>()?;
    Ok(OnnxHeader {
        metadata: model
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        input_shape,
        producer: model.producer_name.clone(),
        tensor_bytes: graph
            .initializer
            .iter()
            .map(|t| t.raw_data.len() as u64 + 4 * t.float_data.len() as u64)
            .sum(),
        tensor_elements: graph
            .initializer
            .iter()
            .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
            .sum(),
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty())
            .map_or(0, |o| o.version),
    })
}

/// An error naming every operator of the graph tract does not implement (an operator of
/// another domain, or of ONNX that tract lacks), with what to do instead.
fn check_operators(path: &Path, graph: &tract_onnx::pb::GraphProto) -> Result<()> {
    let known = tract_onnx::onnx().op_register.0;
    let mut missing: Vec<String> = Vec::new();
    for node in graph
        .node
        .iter()
        .filter(|n| !known.contains_key(&n.op_type))
    {
        let name = match node.domain.as_str() {
            "" | "ai.onnx" => node.op_type.clone(),
            domain => format!("{domain}.{}", node.op_type),
        };
        if !missing.contains(&name) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(model_error(
        path,
        format!(
            "uses operators that tract, kd's ONNX runtime, does not implement: {} (export the model without them, or give kd its TorchScript export)",
            missing.join(", ")
        ),
    ))
}

/// An error unless every tensor the graph reads (a node's input, a graph output) is a
/// graph input, an initializer or a node's output: tract panics on a dangling name.
fn check_names(path: &Path, graph: &tract_onnx::pb::GraphProto) -> Result<()> {
    let mut defined: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .collect();
    defined.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str)),
    );
    let read = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(graph.output.iter().map(|o| o.name.as_str()));
    for name in read.filter(|n| !n.is_empty()) {
        if !defined.contains(name) {
            return Err(model_error(
                path,
                format!("not a valid ONNX graph: it reads the tensor {name:?}, which no input, initializer or node defines"),
            ));
        }
    }
    Ok(())
}

/// Runs tract's `load` on a file, as an error where tract panics on a malformed graph (a
/// bug of the file that tract does not check for). The panic's message becomes the error's
/// rather than a line on stderr: the process's panic hook is set aside meanwhile (files
/// load before training starts, while no other thread of kd's runs).
fn unpanicked<T>(path: &Path, load: impl FnOnce() -> Result<T>) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(model_error(
            path,
            format!("tract cannot load this graph ({why})"),
        ))
    })
}

/// An ONNX image classifier optimized by tract for one batch size.
#[derive(Debug)]
pub struct OnnxRunner {
    plan: Arc<TypedRunnableModel>,
    batch: usize,
    /// `[c, h, w]` of one image.
    image_shape: Vec<usize>,
}

impl OnnxRunner {
    /// Loads `path` for batches of `batch` images of the shape its input declares.
    pub fn load(path: &Path, batch: usize) -> Result<Self> {
        let header = read_header(path)?;
        let image_shape: Vec<usize> = header.input_shape.iter().map(|&d| d as usize).collect();
        let shape: Vec<usize> = std::iter::once(batch).chain(image_shape.clone()).collect();
        let tract = |e: tract_onnx::prelude::TractError| model_error(path, format!("{e:#}"));
        let plan = unpanicked(path, || {
            tract_onnx::onnx()
                .model_for_path(path)
                .map_err(tract)?
                .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
                .map_err(tract)?
                .into_optimized()
                .map_err(tract)?
                .into_runnable()
                .map_err(tract)
        })?;
        Ok(Self {
            plan,
            batch,
            image_shape,
        })
    }

    /// The values of one input image (`c·h·w`).
    pub fn image_len(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// The batch size the model was optimized for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The first output's shape (concrete: the batch is fixed).
    pub fn output_shape(&self) -> Vec<usize> {
        self.plan
            .model()
            .output_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete().map(<[usize]>::to_vec))
            .unwrap_or_default()
    }

    /// The outputs for `images` (`n ≤ batch` images of the input shape, flattened, float);
    /// a shorter batch is padded with zeros and its padding rows dropped. Returns the first
    /// output's rows, flattened.
    pub fn run(&self, images: &[f32], n: usize) -> Result<Vec<f32>> {
        let per_image: usize = self.image_shape.iter().product();
        assert!(n <= self.batch && images.len() == n * per_image);
        let mut data = images.to_vec();
        data.resize(self.batch * per_image, 0.0);
        let shape: Vec<usize> = std::iter::once(self.batch)
            .chain(self.image_shape.clone())
            .collect();
        let failed = |e: tract_onnx::prelude::TractError| OnnxError::Unsupported(format!("{e:#}"));
        let input = tract_onnx::prelude::Tensor::from_shape(&shape, &data).map_err(failed)?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan.run(tvec!(input.into()))
        }))
        .map_err(|_| OnnxError::Unsupported("tract failed running the model".into()))?
        .map_err(failed)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(failed)?;
        let rows = view.len() / self.batch;
        Ok(view.iter().take(n * rows).copied().collect())
    }
}

//! ONNX export of kd's models, written by kd itself (no Python at export time), and a pure-Rust
//! runtime to evaluate the files.
//!
//! - [`graph`]: the inference graph (and its libtorch evaluator, used for calibration);
//! - [`lower`]: kd's architectures as graphs, preprocessing built in, batch norm folded;
//! - [`quantize`]: static int8 post-training quantization in QDQ form;
//! - [`proto`], [`write`]: the graph as an ONNX model (opset 17), float or int8;
//! - [`runtime`]: ONNX files run with tract (sonos/tract, pure Rust);
//! - [`teacher`]: an ONNX classifier as a frozen teacher;
//! - [`error`]: what can go wrong.

pub mod error;
pub mod graph;
pub mod input_contract;
pub mod lower;
pub mod proto;
pub mod quantize;
pub mod runtime;
pub mod teacher;
pub mod write;

pub use error::{OnnxError, Result};
pub use graph::{Graph, Op};
pub use lower::{lower, Preprocess};
pub use quantize::{ActQuant, Calibration};
pub use teacher::OnnxTeacher;

#![warn(missing_docs)]
//! Model layer of kd: architectures built on tch, with parameter names that match PyTorch
//! state-dict keys.
//!
//! - [`student`]: the seed notebook's student family (3x3 conv blocks, max-pool, GAP, dense);
//! - [`vgg`]: VGG11-19 convolutional bases with a GAP + dense head (the seed's teacher);
//! - [`conv_stack`]: the conv/ReLU/max-pool + GAP + dense shape both share;
//! - [`cnn`]: a compact batch-normalized CNN teacher;
//! - [`resnet`], [`wrn`]: the distillation benchmarks' CIFAR-style ResNets and wide ResNets;
//! - [`layers`]: [`Sequential`], named layers in order;
//! - [`memory_format`]: channels-last (NHWC) tensors;
//! - [`metadata`]: what a weights file is, in its safetensors header;
//! - [`precision`]: float32 or bfloat16/float16 mixed precision;
//! - [`native_precision`]: the default precision for a device (bfloat16 where native);
//! - [`pretrained`]: strict loading of published weights by name;
//! - [`summary`]: Keras-style per-layer summaries;
//! - [`tensor_file`]: atomic safetensors writes, with metadata;
//! - [`ensemble`]: frozen teachers combined into one (probability or logit space);
//! - [`class_map`]: a teacher's classes mapped onto the dataset's;
//! - [`teacher_input`]: a teacher's input contract and the bridge from kd's images to it;
//! - [`torchscript`]: a frozen teacher saved by PyTorch's `torch.jit.save`;
//! - [`script_network`]: [`ScriptNetwork`], a TorchScript module as a trainable student (or
//!   teacher), buffers included;
//! - [`simkd`]: a SimKD student, a projector onto a teacher's feature and the teacher's
//!   frozen head;
//! - [`variables`]: copying named tensors into a model's variables;
//! - [`model`]: [`Model`], a built architecture with safetensors save/load;
//! - [`network`]: [`Network`], what training needs of a network (a [`Model`], or a user's tch
//!   module as a [`TchNetwork`]).

pub mod class_map;
pub mod cnn;
pub mod conv_stack;
pub mod ensemble;
pub mod error;
pub mod layers;
pub mod memory_format;
pub mod metadata;
pub mod model;
pub mod native_precision;
pub mod network;
pub mod population;
pub mod precision;
pub mod pretrained;
pub mod resnet;
pub mod script_network;
pub mod simkd;
pub mod student;
pub mod summary;
pub mod teacher_input;
pub mod tensor_file;
pub mod torchscript;
pub mod variables;
pub mod vgg;
pub mod wrn;

pub use class_map::{ClassMap, ClassMapConfig};
pub use cnn::CnnConfig;
pub use ensemble::{Combine, Ensemble};
pub use error::{ModelError, PrecisionCause, Result};
pub use layers::Sequential;
pub use model::{Model, ModelConfig, SimKdStudentConfig};
pub use native_precision::{auto_precision, native_precision, NativePrecision};
pub use network::{Network, TchNetwork};
pub use precision::Precision;
pub use resnet::ResNetConfig;
pub use script_network::ScriptNetwork;
pub use student::StudentConfig;
pub use summary::Summary;
pub use teacher_input::{InputBridge, Resize, TeacherInput};
pub use torchscript::TorchScriptTeacher;
pub use vgg::VggConfig;
pub use wrn::WrnConfig;

//! A built model: its architecture config, its parameters (a tch `VarStore`) and its layers,
//! with safetensors save/load. Saving writes a temporary file beside the target and renames
//! it, so an interrupted save never leaves a half-written model where a good one was.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::cnn::{cnn, CnnConfig};
use crate::error::{ModelError, Result};
use crate::layers::Sequential;
use crate::precision::Precision;
use crate::pretrained::{load_prefix, Loaded};
use crate::resnet::{resnet, ResNetConfig};
use crate::simkd::{compose, Joints, Part};
use crate::student::{student, StudentConfig};
use crate::torchscript::TorchScriptTeacher;
use crate::vgg::{vgg, VggConfig};
use crate::wrn::{wrn, WrnConfig};

/// Name prefix of auxiliary parameters that train with a model but are not part of it (a
/// FitNets regressor): not saved, not counted.
pub use crate::variables::AUX_PREFIX;

/// Which architecture to build, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// The seed's student family ([`StudentConfig`]).
    Student(StudentConfig),
    /// A compact batch-normalized CNN ([`CnnConfig`]).
    Cnn(CnnConfig),
    /// VGG with a global-average-pooling head, optionally ImageNet-pretrained ([`VggConfig`]).
    Vgg(VggConfig),
    /// A CIFAR-style ResNet of the distillation benchmarks ([`ResNetConfig`]).
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// A wide ResNet of the distillation benchmarks ([`WrnConfig`]).
    Wrn(WrnConfig),
    /// A SimKD student: a student's layers, a projector, a teacher's head
    /// ([`SimKdStudentConfig`]); kd writes it for `distill.loss = "simkd"`.
    #[serde(rename = "simkd")]
    SimKd(SimKdStudentConfig),
}

/// A SimKD student ([`crate::simkd`]): `student`'s layers up to `student_layer`, a projector,
/// and `teacher`'s layers after `teacher_layer`, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimKdStudentConfig {
    /// The student's architecture.
    pub student: Box<ModelConfig>,
    /// The student layer the projector takes.
    pub student_layer: String,
    /// The teacher's architecture (without pretrained weights: its head's are copied from the
    /// trained teacher, [`Model::adopt_teacher_head`]).
    pub teacher: Box<ModelConfig>,
    /// The teacher layer whose output the projector imitates; its head is every layer after.
    pub teacher_layer: String,
    /// The projector's bottleneck divides the teacher's channels by it.
    pub factor: usize,
}

impl SimKdStudentConfig {
    fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        for (part, config) in [("student", &self.student), ("teacher", &self.teacher)] {
            if let ModelConfig::SimKd(_) = **config {
                return Err(crate::error::invalid(
                    &format!("{key}.{part}"),
                    "a plain architecture",
                    "another SimKD student",
                ));
            }
            config.validate(&format!("{key}.{part}"), input_hw)?;
        }
        if self.factor == 0 {
            return Err(crate::error::invalid(
                &format!("{key}.factor"),
                "at least 1",
                self.factor,
            ));
        }
        Ok(())
    }
}

impl ModelConfig {
    /// Checks the config for `[c, hw, hw]` inputs; `key` prefixes error messages.
    pub fn validate(&self, key: &str, input_hw: usize) -> Result<()> {
        match self {
            Self::Student(c) => c.validate(key, input_hw),
            Self::Cnn(c) => c.validate(key, input_hw),
            Self::Vgg(c) => c.validate(key, input_hw),
            Self::ResNet(c) => c.validate(key, input_hw),
            Self::Wrn(c) => c.validate(key, input_hw),
            Self::SimKd(c) => c.validate(key, input_hw),
        }
    }

    /// The pretrained weights file the config names, if any.
    pub fn pretrained(&self) -> Option<&Path> {
        match self {
            Self::Vgg(v) => v.pretrained.as_deref(),
            _ => None,
        }
    }

    /// The architecture a kd model file at `path` records (`None`: a weights file without
    /// kd's metadata, or one that cannot be read).
    pub fn recorded_in(path: &Path) -> Option<Self> {
        let meta = crate::metadata::read_metadata(path).ok()?;
        serde_json::from_str(meta.get(crate::metadata::MODEL_KEY)?).ok()
    }

    /// The same architecture without pretrained weights (random initialization), a SimKD
    /// student's parts included.
    pub fn without_pretrained(&self) -> Self {
        match self {
            Self::Vgg(v) => Self::Vgg(VggConfig {
                pretrained: None,
                ..v.clone()
            }),
            Self::SimKd(c) => Self::SimKd(SimKdStudentConfig {
                student: Box::new(c.student.without_pretrained()),
                teacher: Box::new(c.teacher.without_pretrained()),
                ..c.clone()
            }),
            other => other.clone(),
        }
    }

    /// A short human-readable name, e.g. `vgg19` or `student 5x3x64`.
    pub fn describe(&self) -> String {
        match self {
            Self::Student(c) => format!("student {}x{}x{}", c.blocks, c.convs_per_block, c.width),
            Self::Cnn(c) => format!("cnn {:?}x{}", c.channels, c.convs_per_stage),
            Self::Vgg(c) => format!("vgg{}", c.depth),
            Self::ResNet(c) => c.describe(),
            Self::Wrn(c) => c.describe(),
            Self::SimKd(c) => format!(
                "simkd {} to {} head",
                c.student.describe(),
                c.teacher.describe()
            ),
        }
    }
}

/// A model ready to train or evaluate.
#[derive(Debug)]
pub struct Model {
    /// What was built (named in load errors).
    architecture: String,
    vs: nn::VarStore,
    net: Sequential,
    pretrained: Option<Loaded>,
    precision: Precision,
    channels_last: bool,
    /// Parameters of frozen layers that are part of the model (a SimKD student's teacher
    /// head), counted with the trainable ones.
    frozen_parameters: usize,
}

/// The layers of `config` under `root` and the parameter count of its frozen layers.
fn build_layers(
    root: &nn::Path,
    config: &ModelConfig,
    [in_channels, input_hw, classes]: [usize; 3],
) -> Result<(Sequential, usize)> {
    let net = match config {
        ModelConfig::Student(c) => student(root, c, in_channels, classes),
        ModelConfig::Cnn(c) => cnn(root, c, in_channels, input_hw, classes),
        ModelConfig::Vgg(c) => vgg(root, c, in_channels, classes),
        ModelConfig::ResNet(c) => resnet(root, c, in_channels, classes),
        ModelConfig::Wrn(c) => wrn(root, c, in_channels, classes),
        ModelConfig::SimKd(c) => {
            let shape = [in_channels, input_hw, classes];
            let part = |config: &ModelConfig| -> Result<Part> {
                let vs = nn::VarStore::new(root.device());
                let (net, _) = build_layers(&vs.root(), config, shape)?;
                if let Some(path) = config.pretrained() {
                    load_prefix(&vs, path, "features.")?;
                }
                Ok(Part { vs, net })
            };
            let joints = Joints {
                student_layer: &c.student_layer,
                teacher_layer: &c.teacher_layer,
                factor: c.factor,
            };
            let (hw, channels) = (input_hw as i64, in_channels as i64);
            let (student, teacher) = (part(&c.student)?, part(&c.teacher)?);
            return compose(root, student, teacher, &joints, [1, channels, hw, hw]);
        }
    };
    Ok((net, 0))
}

impl Model {
    /// Builds `config` for square inputs `[in_channels, input_hw, input_hw]` on `device`,
    /// with libtorch's default (Kaiming-uniform) initialization, then loads the config's
    /// pretrained weights if it names any.
    pub fn new(
        config: &ModelConfig,
        in_channels: usize,
        input_hw: usize,
        classes: usize,
        device: Device,
    ) -> Result<Self> {
        config.validate("model", input_hw)?;
        let vs = nn::VarStore::new(device);
        let (net, frozen_parameters) =
            build_layers(&vs.root(), config, [in_channels, input_hw, classes])?;
        let pretrained = match config {
            ModelConfig::Vgg(VggConfig {
                pretrained: Some(path),
                depth,
            }) => {
                let loaded = load_prefix(&vs, path, "features.")?;
                tracing::info!(
                    "vgg{depth}: loaded {} pretrained tensors ({} parameters) from {}",
                    loaded.tensors,
                    loaded.parameters,
                    path.display()
                );
                Some(loaded)
            }
            _ => None,
        };
        Ok(Self {
            architecture: config.describe(),
            vs,
            net,
            pretrained,
            precision: Precision::F32,
            channels_last: false,
            frozen_parameters,
        })
    }

    /// A frozen teacher trained outside kd ([`crate::torchscript`]), described as
    /// `architecture`: it has no variables of its own (its weights live in the module), is
    /// never trained or saved by kd, and runs in eval mode whatever it is asked.
    pub fn from_torchscript(
        teacher: TorchScriptTeacher,
        architecture: String,
        device: Device,
    ) -> Self {
        Self::from_frozen("torchscript", "TorchScript", teacher, architecture, device)
    }

    /// A frozen teacher computed by `module` (a TorchScript module, an ONNX file's runtime),
    /// its one layer named `name` of `kind`, described as `architecture`: no variables of
    /// its own, never trained or saved by kd.
    pub fn from_frozen(
        name: &str,
        kind: &'static str,
        module: impl nn::ModuleT + 'static,
        architecture: String,
        device: Device,
    ) -> Self {
        let mut net = Sequential::new();
        net.push(name, kind, module);
        Self {
            architecture,
            vs: nn::VarStore::new(device),
            net,
            pretrained: None,
            precision: Precision::F32,
            channels_last: false,
            frozen_parameters: 0,
        }
    }

    /// The same frozen teacher with its logits mapped onto the dataset's classes by `map`
    /// (a last layer named `class_map`).
    pub fn map_classes(mut self, map: crate::ClassMap) -> Self {
        self.net.push("class_map", "ClassMap", map);
        self
    }

    /// What was loaded from pretrained weights, if anything.
    pub fn pretrained(&self) -> Option<&Loaded> {
        self.pretrained.as_ref()
    }

    /// The layers, in order.
    pub fn layers(&self) -> &Sequential {
        &self.net
    }

    /// Runs forward passes in `precision` from now on ([`Precision`]); fails if libtorch
    /// cannot autocast to it on this model's device.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        precision.check(self.vs.device())?;
        self.precision = precision;
        Ok(())
    }

    /// The precision of forward passes.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Float32 logits `[b, classes]` for images `[b, c, h, w]`; `train` selects training
    /// behaviour of batch norm and dropout.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        let images = self.input(images);
        self.precision
            .forward(self.vs.device(), || self.net.forward_t(&images, train))
    }

    /// `images` in the memory format the model computes in.
    fn input(&self, images: &Tensor) -> Tensor {
        if self.channels_last && !crate::memory_format::is_channels_last(images) {
            crate::memory_format::channels_last(images)
        } else {
            images.shallow_clone()
        }
    }

    /// Float32 logits for `images` and the (float32) outputs of the layers named in `names`, in that order;
    /// `None` if a name is not a layer of this model.
    pub fn forward_features(
        &self,
        images: &Tensor,
        train: bool,
        names: &[&str],
    ) -> Option<(Tensor, Vec<Tensor>)> {
        let mut found: Vec<Option<Tensor>> = names.iter().map(|_| None).collect();
        let images = self.input(images);
        let mut outputs = self.precision.forward_many(self.vs.device(), || {
            let logits = self.net.forward_each(&images, train, |layer, out| {
                for (slot, name) in found.iter_mut().zip(names) {
                    if layer.name == *name {
                        *slot = Some(out.shallow_clone());
                    }
                }
            });
            let mut outputs = vec![logits];
            outputs.extend(found.iter().flatten().map(Tensor::shallow_clone));
            outputs
        });
        if outputs.len() != names.len() + 1 {
            return None;
        }
        let logits = outputs.remove(0);
        Some((logits, outputs))
    }

    /// The (float32) output of the layer named `name` for `images`, computing no layer after
    /// it (a teacher's hinted feature); `None` if `name` is not a layer of this model.
    pub fn forward_feature(&self, images: &Tensor, train: bool, name: &str) -> Option<Tensor> {
        if !self.net.layers().iter().any(|l| l.name == name) {
            return None;
        }
        let images = self.input(images);
        let feature = self.precision.forward(self.vs.device(), || {
            self.net
                .forward_until(&images, train, name)
                .expect("the layer exists")
        });
        Some(feature)
    }

    /// Stores every 4-d parameter (convolution kernels) channels-last and converts inputs
    /// to it, so that libtorch's convolutions run in NHWC ([`crate::memory_format`]); call
    /// before building an optimizer. Outputs are the same up to float rounding.
    pub fn use_channels_last(&mut self) {
        self.channels_last = true;
        for (_, var) in self.vs.variables() {
            if var.dim() == 4 {
                let mut var = var;
                let nhwc = crate::memory_format::channels_last(&var);
                tch::no_grad(|| var.set_data(&nhwc));
            }
        }
    }

    /// Whether the model computes channels-last.
    pub fn is_channels_last(&self) -> bool {
        self.channels_last
    }

    /// The parameters (and batch-norm statistics).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Number of trainable parameters of the architecture (auxiliary training-only
    /// parameters under [`AUX_PREFIX`] not counted).
    /// Frozen parameters still count (a frozen teacher's, a SimKD student's teacher head);
    /// batch-norm statistics do not.
    pub fn trainable_parameters(&self) -> usize {
        let trainable: std::collections::HashSet<usize> = self
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.data_ptr() as usize)
            .collect();
        self.vs
            .variables()
            .into_iter()
            .filter(|(name, t)| {
                !name.starts_with(AUX_PREFIX) && trainable.contains(&(t.data_ptr() as usize))
            })
            .map(|(_, t)| t.numel())
            .sum::<usize>()
            + self.frozen_parameters
    }

    /// Copies into a SimKD student's frozen head (its variables `teacher.*`) the weights of
    /// `teacher`'s variables of the same names; a model without a head is left as it is.
    /// Fails, changing nothing, if `teacher` lacks one of them or has it in another shape.
    pub fn adopt_teacher_head(&self, teacher: &Model) -> Result<()> {
        let theirs = teacher.vs.variables();
        let mut head = BTreeMap::new();
        for name in self.vs.variables().into_keys() {
            if let Some(own) = name.strip_prefix(crate::simkd::HEAD_PREFIX) {
                let tensor = theirs.get(own).ok_or_else(|| ModelError::InvalidConfig {
                    key: "teacher".into(),
                    expected: format!(
                        "a teacher with the variable {own:?} (SimKD reuses its head)"
                    ),
                    got: teacher.architecture.clone(),
                })?;
                head.insert(name, tensor.shallow_clone());
            }
        }
        crate::variables::copy_named(&self.vs, &head).map_err(|detail| ModelError::InvalidConfig {
            key: "teacher".into(),
            expected: "the teacher whose head the SimKD student reuses".into(),
            got: detail,
        })
    }

    /// Stops gradients to every parameter (a frozen teacher).
    pub fn freeze(&mut self) {
        self.vs.freeze();
    }

    /// Saves every variable (except auxiliary ones) to `path` in safetensors format,
    /// atomically; returns the size of the written file in bytes.
    pub fn save(&self, path: &Path) -> Result<u64> {
        self.save_with_metadata(path, &BTreeMap::new())
    }

    /// [`Model::save`] with `metadata` in the file's header ([`crate::metadata`]).
    pub fn save_with_metadata(
        &self,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64> {
        crate::variables::save_variables(&self.vs, path, metadata)
    }

    /// Loads every variable (except auxiliary ones) from a safetensors file written by
    /// [`Model::save`]; fails, naming the file and the tensor, on anything missing or of
    /// another shape or dtype, and then changes nothing.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved = crate::tensor_file::read_tensors(path)?;
        self.copy_from(&saved, false)
            .map_err(|detail| ModelError::ModelFile {
                path: path.to_path_buf(),
                detail,
            })
    }

    /// Copies `tensors` (by variable name) into the model's variables — the auxiliary ones
    /// too if `with_aux` — after checking that every one is there with its shape and dtype;
    /// on a mismatch nothing is copied and the message names the tensor.
    pub fn copy_from(
        &self,
        tensors: &BTreeMap<String, Tensor>,
        with_aux: bool,
    ) -> std::result::Result<(), String> {
        crate::variables::copy_variables(&self.vs, tensors, with_aux, Some(&self.architecture))
    }
}

//! A teacher shipped as an ONNX file (every framework exports to ONNX: PyTorch's
//! `torch.onnx.export`, Keras 3, kd's own `kd-cli export`), run by tract ([`crate::runtime`])
//! as one frozen layer of a kd model. kd's batches reach it through its
//! [`InputBridge`]: the contract `[teacher.input]` states, each key it leaves unset taken
//! from the file's metadata ([`crate::input_contract`]), then the channels and side from
//! its input's shape. Its one output must be
//! `[batch, classes]` logits. tract optimizes the graph once per batch size it meets (the
//! logit cache's 1,000 and the remainder, or the students' batch size).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kd_models::{InputBridge, TeacherInput};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use crate::error::{OnnxError, Result};
use crate::runtime::{read_header, OnnxRunner};

/// An ONNX classifier as a frozen teacher.
pub struct OnnxTeacher {
    path: PathBuf,
    bridge: InputBridge,
    /// `[c, h, w]` of one input image, as the file declares.
    input_shape: [usize; 3],
    classes: usize,
    /// Elements of its constant tensors.
    parameters: usize,
    runners: Mutex<HashMap<usize, Arc<OnnxRunner>>>,
}

impl std::fmt::Debug for OnnxTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxTeacher")
            .field("path", &self.path)
            .field("input_shape", &self.input_shape)
            .field("classes", &self.classes)
            .finish()
    }
}

fn model_error(path: &Path, detail: impl Into<String>) -> OnnxError {
    OnnxError::Model {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl OnnxTeacher {
    /// Loads the ONNX classifier at `path` for `[c, h, h]` images, bridged by `input` on
    /// the CPU, where tract runs (its channels and side default to the file's input);
    /// checks that the bridged images are what the file takes and that it returns `[batch,
    /// classes]` logits (`classes`: any number when `None`). Each error names the file and
    /// what differs.
    pub fn load(
        path: &Path,
        input: &TeacherInput,
        [c, h]: [usize; 2],
        classes: Option<usize>,
    ) -> Result<Self> {
        let header = read_header(path)?;
        let input_shape: [usize; 3] = match header.input_shape[..] {
            [tc, th, tw] if tc > 0 && th > 0 && th == tw => [tc as usize, th as usize, tw as usize],
            _ => {
                return Err(model_error(
                    path,
                    format!(
                        "expected an image classifier taking [batch, channels, side, side], got an input of [batch, {}]",
                        header.input_shape.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        };
        let stated = crate::input_contract::from_metadata(path, &header.metadata)?;
        let mut contract = crate::input_contract::merge(input, &stated);
        if contract.channels == 0 {
            contract.channels = input_shape[0];
        }
        if contract.image_size == 0 && input_shape[1] != h {
            contract.image_size = input_shape[1];
        }
        let bridge = InputBridge::new(&contract, c, Device::Cpu)
            .map_err(|e| model_error(path, format!("cannot feed it {c}-channel images: {e}")))?;
        let mut teacher = Self {
            path: path.to_path_buf(),
            bridge,
            input_shape,
            classes: 0,
            parameters: header.tensor_elements as usize,
            runners: Mutex::new(HashMap::new()),
        };
        teacher.classes = teacher.probe([c, h], classes)?;
        Ok(teacher)
    }

    /// Feeds two blank images of `[c, h, h]` through the bridge and the file: the file
    /// must take the bridged shape and return `[2, classes]`; returns its classes.
    fn probe(&self, [c, h]: [usize; 2], classes: Option<usize>) -> Result<usize> {
        let images = Tensor::zeros(
            [2, c as i64, h as i64, h as i64],
            (Kind::Float, Device::Cpu),
        );
        let view = self.bridge.apply(&images);
        let want: Vec<i64> = self.input_shape.iter().map(|&d| d as i64).collect();
        if view.size()[1..] != want[..] {
            return Err(model_error(
                &self.path,
                format!(
                    "takes [batch, {}] images; teacher.input makes [batch, {}] of the dataset's [batch, {c}, {h}, {h}] (set teacher.input.channels and image_size to match)",
                    join(&want),
                    join(&view.size()[1..])
                ),
            ));
        }
        let runner = self.runner(2)?;
        let shape = runner.output_shape();
        // Run once, so that a graph tract cannot compute fails here, not mid-training.
        runner.run(&vec![0.0; 2 * runner.image_len()], 2)?;
        match (&shape[..], classes) {
            ([2, k], None) if *k > 0 => Ok(*k),
            ([2, k], Some(want)) if *k == want => Ok(*k),
            _ => Err(model_error(
                &self.path,
                format!(
                    "expected a classifier returning [batch, {}] logits, got an output of {shape:?} for a batch of 2",
                    classes.map_or("classes".into(), |k| format!("{k}"))
                ),
            )),
        }
    }

    /// The runner optimized for batches of `n`, built on first use.
    fn runner(&self, n: usize) -> Result<Arc<OnnxRunner>> {
        let mut runners = self
            .runners
            .lock()
            .expect("no panic while holding the lock");
        if let Some(r) = runners.get(&n) {
            return Ok(r.clone());
        }
        let runner = Arc::new(OnnxRunner::load(&self.path, n)?);
        runners.insert(n, runner.clone());
        Ok(runner)
    }

    /// The bridge from kd's images to the file's input.
    pub fn bridge(&self) -> &InputBridge {
        &self.bridge
    }

    /// The elements of its weights (the file's constant tensors).
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The classes it returns.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Float32 logits `[b, classes]` for images `[b, c, h, w]` in [0, 1], on the images'
    /// device.
    pub fn try_forward(&self, images: &Tensor) -> Result<Tensor> {
        let n = images.size()[0] as usize;
        let view = tch::no_grad(|| self.bridge.apply(&images.to_device(Device::Cpu)))
            .to_kind(Kind::Float)
            .contiguous();
        let data = Vec::<f32>::try_from(view.flatten(0, -1))
            .map_err(|e| OnnxError::Unsupported(format!("reading the teacher's input: {e}")))?;
        let logits = self.runner(n)?.run(&data, n)?;
        Ok(Tensor::from_slice(&logits)
            .view([n as i64, self.classes as i64])
            .to_device(images.device()))
    }
}

impl ModuleT for OnnxTeacher {
    /// Always inference (the teacher is frozen).
    fn forward_t(&self, images: &Tensor, _train: bool) -> Tensor {
        self.try_forward(images)
            .expect("an ONNX teacher is checked on the run's input shape when loaded")
    }
}

fn join<T: ToString>(dims: &[T]) -> String {
    dims.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

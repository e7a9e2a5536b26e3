//! A teacher trained outside kd: any module saved with PyTorch's `torch.jit.save` (traced or
//! scripted; torchvision and timm models included), loaded through libtorch's TorchScript
//! runtime, frozen and always run in eval mode. Its input preprocessing is stated, not
//! guessed: kd's batches (pixels scaled to [0, 1]) go through its [`InputBridge`]
//! (channels, size, mean and std of `[teacher.input]`).

use std::path::{Path, PathBuf};

use tch::nn::ModuleT;
use tch::{CModule, Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::teacher_input::{InputBridge, TeacherInput};

/// A loaded TorchScript module with its preprocessing, as one layer of a [`crate::Model`].
#[derive(Debug)]
pub struct TorchScriptTeacher {
    module: CModule,
    bridge: InputBridge,
}

impl TorchScriptTeacher {
    /// Loads `path` on `device` in eval mode, fed `image_channels`-channel images through
    /// `input`'s bridge; an error names the file when it is not a TorchScript module (a
    /// `state_dict` saved with `torch.save`, a text file).
    pub fn load(
        path: &Path,
        input: &TeacherInput,
        image_channels: usize,
        device: Device,
    ) -> Result<Self> {
        let bridge = InputBridge::new(input, image_channels, device)?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            ModelError::ModelFile {
                path: path.to_path_buf(),
                detail: format!(
                    "not a TorchScript module (save one with torch.jit.save(torch.jit.trace(model, example), path); a state_dict from torch.save is not one): {}",
                    first_line(&e.to_string())
                ),
            }
        })?;
        module.set_eval();
        Ok(Self { module, bridge })
    }

    /// The bridge from kd's images to the module's input.
    pub fn bridge(&self) -> &InputBridge {
        &self.bridge
    }

    /// Runs the module on `[b, c, h, w]` images in [0, 1]; an error for an input the
    /// module does not take.
    pub fn try_forward(&self, images: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
        let x = self.bridge.apply(images);
        tch::no_grad(|| self.module.forward_ts(&[x]))
    }

    /// Number of parameters the module holds.
    pub fn parameters(&self) -> i64 {
        self.module
            .named_parameters()
            .map_or(0, |p| p.iter().map(|(_, t)| t.numel() as i64).sum())
    }
}

impl ModuleT for TorchScriptTeacher {
    /// Always eval mode (the teacher is frozen), without gradients.
    fn forward_t(&self, images: &Tensor, _train: bool) -> Tensor {
        self.try_forward(images)
            .expect("a TorchScript teacher is checked on the run's input shape when loaded")
    }
}

/// Loads the TorchScript teacher at `path` and checks that it takes `[c, hw, hw]` images and
/// returns `[batch, classes]` (`classes`: any number when `None`); returns it with its
/// classes. The error names both shapes.
pub fn load_checked(
    path: &Path,
    input: &TeacherInput,
    [c, hw]: [usize; 2],
    classes: Option<usize>,
    device: Device,
) -> Result<(TorchScriptTeacher, usize)> {
    let teacher = TorchScriptTeacher::load(path, input, c, device)?;
    let probe = Tensor::zeros([2, c as i64, hw as i64, hw as i64], (Kind::Float, device));
    let bad = |detail: String| ModelError::ModelFile {
        path: path.to_path_buf(),
        detail,
    };
    let out = teacher.try_forward(&probe).map_err(|e| {
        bad(format!(
            "the TorchScript teacher does not take the images it is fed: the dataset's [batch, {c}, {hw}, {hw}] (data.image_folder.channels for an image folder), {} by teacher.input (channels, image_size, mean, std): {}",
            teacher.bridge.describe(hw).unwrap_or_else(|| "unchanged".into()),
            torch_reason(&e.to_string())
        ))
    })?;
    match (&out.size()[..], classes) {
        ([2, k], None) if *k > 0 => Ok((teacher, *k as usize)),
        ([2, k], Some(want)) if *k as usize == want => Ok((teacher, want)),
        (size, _) => Err(bad(format!(
            "the TorchScript teacher returns {size:?} for a batch of 2, expected [2, {}]",
            classes.map_or("classes".into(), |k| format!("{k}"))
        ))),
    }
}

/// Why libtorch refused: the TorchScript interpreter's message starts with "The following
/// operation failed" and two tracebacks, and ends with the reason (`RuntimeError: ...`);
/// other messages carry a C++ backtrace after their first line.
fn torch_reason(message: &str) -> String {
    if !message.contains("TorchScript interpreter") {
        return first_line(message);
    }
    let is_reason = |l: &&str| {
        let word = l.trim_start().split(':').next().unwrap_or_default();
        l.contains(": ") && word.ends_with("Error") && !word.contains(' ')
    };
    message
        .lines()
        .rev()
        .find(is_reason)
        .or_else(|| message.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or(message)
        .trim()
        .to_string()
}

/// libtorch's messages carry a C++ backtrace after their first line.
pub(crate) fn first_line(message: &str) -> String {
    message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .trim()
        .to_string()
}

/// The SHA-256 of a file, hex (what the report names a TorchScript teacher by).
pub fn file_digest(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|cause| ModelError::Io {
        path: PathBuf::from(path),
        cause,
    })?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

#[cfg(test)]
mod reason_tests {
    use super::torch_reason;

    #[test]
    fn the_interpreters_reason_is_its_last_error_line() {
        // The shape of libtorch 2.11's message for a traced Conv2d(3, ...) fed 1 channel.
        let message = "Internal torch error: The following operation failed in the TorchScript interpreter.
Traceback of TorchScript, serialized code (most recent call last):
  File \"code/__torch__/torch/nn/modules/container.py\", line 12, in forward
    _0 = torch._convolution(input, weight, bias, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, False, False, True, True)
         ~~~~~~~~~~~~~~~~~~ <--- HERE
Traceback of TorchScript, original code (most recent call last):
RuntimeError: Given groups=1, weight of size [4, 3, 3, 3], expected input[2, 1, 12, 12] to have 3 channels, but got 1 channels instead
";
        assert_eq!(
            torch_reason(message),
            "RuntimeError: Given groups=1, weight of size [4, 3, 3, 3], expected input[2, 1, 12, 12] to have 3 channels, but got 1 channels instead"
        );
        assert_eq!(
            torch_reason("shape mismatch\nException raised from x at y.cpp:1"),
            "shape mismatch"
        );
    }
}

//! A teacher from outside kd — a TorchScript module (`teacher.torchscript`) or an ONNX file
//! (`teacher.onnx`; `teacher.source` names either) — loaded, bridged to the run's images by
//! `[teacher.input]` ([`kd_models::InputBridge`]) and checked on them before anything
//! trains: it must take the bridged images and return the dataset's classes.

use std::path::{Path, PathBuf};

use anyhow::Result;
use kd_models::{InputBridge, Model, TorchScriptTeacher};
use kd_onnx::OnnxTeacher;
use tch::Device;

use crate::config::TeacherConfig;

/// The loaded module.
#[derive(Debug)]
enum Module {
    TorchScript(TorchScriptTeacher),
    Onnx(OnnxTeacher),
}

/// A frozen teacher from a file kd did not write.
#[derive(Debug)]
pub struct OutsideTeacher {
    path: PathBuf,
    module: Module,
}

impl OutsideTeacher {
    /// The teacher `teacher` names, if it names one outside kd, loaded for `[c, h, h]`
    /// images of `classes` classes on `device` and checked on them.
    pub fn load(
        teacher: &TeacherConfig,
        [c, h]: [usize; 2],
        classes: usize,
        device: Device,
    ) -> Result<Option<Self>> {
        let input = &teacher.input;
        if let Some(path) = &teacher.torchscript {
            input.validate("teacher.input", c)?;
            let module =
                kd_models::torchscript::load_checked(path, input, [c, h], classes, device)?;
            return Ok(Some(Self {
                path: path.clone(),
                module: Module::TorchScript(module),
            }));
        }
        if let Some(path) = &teacher.onnx {
            let module = OnnxTeacher::load(path, input, [c, h], classes)?;
            return Ok(Some(Self {
                path: path.clone(),
                module: Module::Onnx(module),
            }));
        }
        Ok(None)
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it is, in reports: `TorchScript module` or `ONNX model`.
    pub fn describe(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "TorchScript module",
            Module::Onnx(_) => "ONNX model",
        }
    }

    /// Its file's format: `TorchScript` or `ONNX`.
    pub fn format(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "TorchScript",
            Module::Onnx(_) => "ONNX",
        }
    }

    /// Its kind in reports: `torchscript` or `onnx`.
    pub fn kind(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "torchscript",
            Module::Onnx(_) => "onnx",
        }
    }

    /// The numbers it holds: a TorchScript module's parameters, an ONNX file's weight
    /// elements (its initializers).
    pub fn parameters(&self) -> usize {
        match &self.module {
            Module::TorchScript(m) => m.parameters() as usize,
            Module::Onnx(m) => m.parameters(),
        }
    }

    /// The bridge from the run's images to its input.
    pub fn bridge(&self) -> &InputBridge {
        match &self.module {
            Module::TorchScript(m) => m.bridge(),
            Module::Onnx(m) => m.bridge(),
        }
    }

    /// The teacher as a frozen kd [`Model`] on `device` (its logits there).
    pub fn into_model(self, device: Device) -> Model {
        let architecture = format!("{} {}", self.kind(), self.path.display());
        match self.module {
            Module::TorchScript(m) => Model::from_torchscript(m, architecture, device),
            Module::Onnx(m) => Model::from_frozen("onnx", "ONNX", m, architecture, device),
        }
    }
}

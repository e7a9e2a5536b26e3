//! A teacher from outside the run — a TorchScript module (`teacher.torchscript`), an ONNX
//! file (`teacher.onnx`; `teacher.source` names either), or an ensemble of such files and
//! kd model files (`[[teacher.ensemble]]`) — loaded, bridged to the run's images by
//! `[teacher.input]` ([`kd_models::InputBridge`]) and checked on them before anything
//! trains: each must take the bridged images and return the dataset's classes, or classes
//! `teacher.class_map` maps onto them ([`kd_models::class_map`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kd_models::{
    ClassMap, ClassMapConfig, Ensemble, InputBridge, Model, TeacherInput, TorchScriptTeacher,
};
use kd_onnx::OnnxTeacher;
use tch::{Device, Kind, Tensor};

use crate::config::TeacherConfig;

/// The loaded module.
#[derive(Debug)]
enum Module {
    TorchScript(TorchScriptTeacher),
    Onnx(OnnxTeacher),
    /// Members (their files and normalized weights in `OutsideTeacher::files`).
    Ensemble(Ensemble),
}

/// A frozen teacher from files the run did not write.
#[derive(Debug)]
pub struct OutsideTeacher {
    /// The file, or each member's with its normalized weight.
    files: Vec<(PathBuf, f64)>,
    module: Module,
    /// A single teacher's map onto the dataset's classes.
    class_map: Option<ClassMap>,
    /// What each class map does (an ensemble's members' prefixed by their file).
    class_notes: Vec<String>,
}

impl OutsideTeacher {
    /// The teacher `teacher` names, if it names one from outside the run, loaded for `[c,
    /// h, h]` images of `classes` classes on `device` and checked on them.
    pub fn load(
        teacher: &TeacherConfig,
        [c, h]: [usize; 2],
        classes: usize,
        device: Device,
    ) -> Result<Option<Self>> {
        let input = &teacher.input;
        let file = teacher.torchscript.as_ref().or(teacher.onnx.as_ref());
        if let Some(path) = file {
            let (module, own) = if teacher.onnx.is_some() {
                let m = OnnxTeacher::load(path, input, [c, h], None)?;
                let own = m.classes();
                (Module::Onnx(m), own)
            } else {
                input.validate("teacher.input", c)?;
                let (m, own) =
                    kd_models::torchscript::load_checked(path, input, [c, h], None, device)?;
                (Module::TorchScript(m), own)
            };
            let class_map = class_map(teacher.class_map.as_ref(), path, own, classes)?;
            let class_notes = class_map.iter().map(|m| m.describe(own)).collect();
            return Ok(Some(Self {
                files: vec![(path.clone(), 1.0)],
                module,
                class_map,
                class_notes,
            }));
        }
        if teacher.ensemble.is_empty() {
            return Ok(None);
        }
        let mut class_notes = Vec::new();
        let mut members = Vec::new();
        for m in &teacher.ensemble {
            let map = m.class_map.as_ref().or(teacher.class_map.as_ref());
            let (model, note) = member(&m.source, input, map, [c, h], classes, device)?;
            class_notes.extend(note.map(|n| format!("{}: {n}", m.source.display())));
            members.push((model, m.weight));
        }
        let ensemble = Ensemble::new(members, teacher.combine)?;
        let files = teacher
            .ensemble
            .iter()
            .zip(ensemble.members())
            .map(|(m, (_, w))| (m.source.clone(), *w))
            .collect();
        let module = Module::Ensemble(ensemble);
        Ok(Some(Self {
            files,
            module,
            class_map: None,
            class_notes,
        }))
    }

    /// What its class maps do, for logs and reports, e.g. "teacher classes 1000 -> 10 (10
    /// used)" (an ensemble member's prefixed by its file; empty: no map).
    pub fn class_notes(&self) -> &[String] {
        &self.class_notes
    }

    /// Its file (an ensemble's first member's).
    pub fn path(&self) -> &Path {
        &self.files[0].0
    }

    /// Its files with their normalized weights (one for a single teacher).
    pub fn files(&self) -> &[(PathBuf, f64)] {
        &self.files
    }

    /// What it is, in reports: `TorchScript module`, `ONNX model` or `ensemble`.
    pub fn describe(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "TorchScript module",
            Module::Onnx(_) => "ONNX model",
            Module::Ensemble(_) => "ensemble",
        }
    }

    /// Its file's format: `TorchScript`, `ONNX` or `Ensemble`.
    pub fn format(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "TorchScript",
            Module::Onnx(_) => "ONNX",
            Module::Ensemble(_) => "Ensemble",
        }
    }

    /// Its kind in reports: `torchscript`, `onnx` or `ensemble`.
    pub fn kind(&self) -> &'static str {
        match self.module {
            Module::TorchScript(_) => "torchscript",
            Module::Onnx(_) => "onnx",
            Module::Ensemble(_) => "ensemble",
        }
    }

    /// The numbers it holds: a TorchScript module's parameters, an ONNX file's weight
    /// elements (its initializers), an ensemble's members' sum.
    pub fn parameters(&self) -> usize {
        match &self.module {
            Module::TorchScript(m) => m.parameters() as usize,
            Module::Onnx(m) => m.parameters(),
            Module::Ensemble(e) => e.members().iter().map(|(m, _)| parameters(m)).sum(),
        }
    }

    /// The bridge from the run's images to a TorchScript or ONNX teacher's input (`None`
    /// for an ensemble, whose TorchScript and ONNX members each bridge their own).
    pub fn bridge(&self) -> Option<&InputBridge> {
        match &self.module {
            Module::TorchScript(m) => Some(m.bridge()),
            Module::Onnx(m) => Some(m.bridge()),
            Module::Ensemble(_) => None,
        }
    }

    /// An ensemble's members, each with its normalized weight (empty otherwise).
    pub fn members(&self) -> &[(Model, f64)] {
        match &self.module {
            Module::Ensemble(e) => e.members(),
            _ => &[],
        }
    }

    /// The teacher as a frozen kd [`Model`] on `device` (its logits there).
    pub fn into_model(self, device: Device) -> Model {
        let architecture = match &self.module {
            Module::Ensemble(_) => format!("ensemble of {}", self.files.len()),
            _ => format!("{} {}", self.kind(), self.path().display()),
        };
        let model = match self.module {
            Module::TorchScript(m) => Model::from_torchscript(m, architecture, device),
            Module::Onnx(m) => Model::from_frozen("onnx", "ONNX", m, architecture, device),
            Module::Ensemble(e) => {
                Model::from_frozen("ensemble", "Ensemble", e, architecture, device)
            }
        };
        match self.class_map {
            Some(map) => model.map_classes(map),
            None => model,
        }
    }
}

/// Every number a model holds (a frozen kd model's parameters are no longer trainable).
fn parameters(model: &Model) -> usize {
    let vars = model.var_store().variables();
    let kd: usize = vars.values().map(|t| t.numel()).sum();
    if kd > 0 {
        return kd;
    }
    model.trainable_parameters()
}

/// The map onto the dataset's `classes` of `path`'s teacher of `own` classes: none when
/// they are the same and no map is given; an error naming the file when they differ
/// without one, or when the map does not fit.
fn class_map(
    config: Option<&ClassMapConfig>,
    path: &Path,
    own: usize,
    classes: usize,
) -> Result<Option<ClassMap>> {
    let Some(config) = config else {
        if own != classes {
            bail!(
                "{}: the teacher returns {own} classes, the dataset has {classes}: set teacher.class_map (a list of {classes} teacher class indices, or a table of teacher class = dataset class)",
                path.display()
            );
        }
        return Ok(None);
    };
    let map = ClassMap::new(config, classes)?;
    map.check(own)
        .with_context(|| format!("{}", path.display()))?;
    Ok(Some(map))
}

/// One ensemble member from `path`: an ONNX file, a kd model file (its architecture and
/// preprocessing in its metadata; fed the run's batches as they are), or TorchScript —
/// frozen, checked to take the run's `[c, h, h]` images, and mapped onto the dataset's
/// `classes` by `map` (with what the map does).
fn member(
    path: &Path,
    input: &TeacherInput,
    map: Option<&ClassMapConfig>,
    [c, h]: [usize; 2],
    classes: usize,
    device: Device,
) -> Result<(Model, Option<String>)> {
    let architecture = |kind: &str| format!("{kind} {}", path.display());
    let model = match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => {
            let m = OnnxTeacher::load(path, input, [c, h], None)?;
            Model::from_frozen("onnx", "ONNX", m, architecture("onnx"), device)
        }
        Some("safetensors") => {
            let (mut model, info) = crate::saved_model::open(path, device)?;
            let takes = info.transform.output_shape(info.input_shape);
            if takes != [c, h, h] {
                bail!(
                    "{}: a kd model of {takes:?} images, expected the run's [{c}, {h}, {h}] (a kd member is fed the run's batches as they are)",
                    path.display()
                );
            }
            model.freeze();
            model
        }
        _ => {
            let (m, _) = kd_models::torchscript::load_checked(path, input, [c, h], None, device)?;
            Model::from_torchscript(m, architecture("torchscript"), device)
        }
    };
    let probe = Tensor::zeros([2, c as i64, h as i64, h as i64], (Kind::Float, device));
    let out = tch::no_grad(|| model.forward_t(&probe, false));
    let own = match out.size()[..] {
        [2, k] if k > 0 => k as usize,
        _ => bail!(
            "{}: expected a teacher returning [batch, classes] logits for the run's [batch, {c}, {h}, {h}] images, got {:?}",
            path.display(),
            out.size()
        ),
    };
    Ok(match class_map(map, path, own, classes)? {
        Some(map) => {
            let note = map.describe(own);
            (model.map_classes(map), Some(note))
        }
        None => (model, None),
    })
}

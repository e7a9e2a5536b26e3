//! `kd-cli eval TEACHER.pt --config CONFIG`: a TorchScript teacher's accuracy, per class and as
//! a confusion matrix, as the run of `CONFIG` would see it with that module as its
//! `teacher.torchscript`. A TorchScript file records no dataset, preprocessing or input
//! contract, so the config gives them: the [`Plan`] reads the data, loads the module and
//! probes it on the images exactly as `kd-cli run` does, and its errors are the run's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kd_data::{BatchLoader, ImageDataset};
use tch::Device;

use crate::config::{DeviceChoice, Override};
use crate::eval::{per_class_accuracy, EvalReport};
use crate::eval_precision::EvalPrecision;
use crate::run::{Plan, RunOverrides};

/// Whether `path` names a TorchScript file (by its extension, `.pt` or `.pth`).
///
/// ```
/// use std::path::Path;
/// use kd_experiment::eval_torchscript::is_torchscript;
///
/// assert!(is_torchscript(Path::new("teacher.pt")));
/// assert!(is_torchscript(Path::new("models/teacher.PTH")));
/// assert!(!is_torchscript(Path::new("teacher.safetensors")));
/// assert!(!is_torchscript(Path::new("pt")));
/// ```
pub fn is_torchscript(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pt") || e.eq_ignore_ascii_case("pth"))
}

/// The plan of `config` with `module` as its TorchScript teacher, on `device`, reading the
/// data from `data_dir` if given; `what` names the command in the error without a config.
pub fn plan_for_module(
    module: &Path,
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
    device: Device,
    what: &str,
) -> Result<Plan> {
    let Some(config) = config else {
        bail!(
            "{}: a TorchScript file records no dataset, preprocessing or input contract; {what} it with --config CONFIG, the run config that takes it as teacher.torchscript (its [data] and [teacher.input])",
            module.display()
        );
    };
    let module = std::path::absolute(module).unwrap_or_else(|_| module.to_path_buf());
    let mut sets = vec![Override::string(
        "teacher.torchscript",
        &module.display().to_string(),
    )];
    if let Some(dir) = data_dir {
        sets.push(Override::string("data.dir", &dir.display().to_string()));
    }
    let overrides = RunOverrides {
        sets,
        device: Some(match device {
            Device::Cuda(_) => DeviceChoice::Cuda,
            _ => DeviceChoice::Cpu,
        }),
        ..Default::default()
    };
    Plan::new(config, &overrides)
}

/// Evaluates the TorchScript `module` in float32 on `split` (`test`, or `train`: the run's
/// training images) of `config`'s dataset.
pub fn eval_torchscript(
    module: &Path,
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
    split: &str,
    (device, precision): (Device, EvalPrecision),
) -> Result<EvalReport> {
    if !matches!(precision, EvalPrecision::F32 | EvalPrecision::Run) {
        bail!(
            "{}: a TorchScript teacher computes in float32; --precision applies to .safetensors model files",
            module.display()
        );
    }
    let mut plan = plan_for_module(module, config, data_dir, device, "evaluate")?;
    let model = plan.outside_teacher_model()?;
    let data: &ImageDataset = match split {
        "test" => &plan.data.test,
        "train" => &plan.data.train,
        other => bail!("--split: expected test or train, got {other:?}"),
    };
    let transform = plan.config().data.transform.clone();
    let loader = BatchLoader::new(data, crate::run::EVAL_BATCH, transform, device);
    let classes = plan.classes();
    let (evaluation, confusion) = kd_train::evaluate_with_confusion(
        &model,
        &loader,
        &kd_train::Objective::CrossEntropy,
        kd_train::Split::Validation,
        classes,
    )?;
    let cfg = plan.config();
    let names = plan.data.class_names.as_deref();
    Ok(EvalReport {
        model: module.display().to_string(),
        dataset: cfg.data.dataset.name().into(),
        data_dir: cfg.data.dir().display().to_string(),
        split: split.into(),
        images: data.len(),
        accuracy: evaluation.accuracy,
        precision: Some("f32".into()),
        classes: crate::saved_model::class_labels(cfg.data.dataset, names, classes),
        per_class_accuracy: per_class_accuracy(&confusion),
        confusion,
    })
}

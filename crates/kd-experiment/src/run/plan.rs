//! The plan of a run: every decision `run` makes before anything trains, settled once — the
//! resolved config, the run directory, the data and its shapes, the students' labelled and
//! unlabeled images, the device, the teacher's source (a TorchScript teacher loaded and
//! probed here), whether the teacher's logits are cached, the logit loss, the ranks of a
//! data-parallel launch. `kd-cli check` prints a plan and `kd-cli run` runs one, so the two
//! cannot disagree. Making a plan trains nothing and writes nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kd_core::DistillLoss;
use kd_data::ImageDataset;
use kd_models::Model;

use crate::logits_file::TeacherLogits;
use crate::outside_teacher::OutsideTeacher;
use kd_train::distributed::{launch_env, LaunchEnv};
use tch::Device;

use super::checks::{check_feature_loss, check_graph_requests, check_ranks, check_teacher};
use super::data::{load_data, RunData};
use super::directory::run_dir;
use super::unlabeled::{student_sets, StudentSets};
use super::{resolve_config, RunOverrides};
use crate::config::RunConfig;
use crate::env::{keep_freed_memory, prepare_device};

/// A run, planned: what [`Plan::run`](super::Plan::run) will do, checked.
///
/// ```no_run
/// use std::path::Path;
/// use kd_experiment::run::{Plan, RunOverrides};
///
/// let plan = Plan::new(Path::new("configs/quickstart.toml"), &RunOverrides::default())?;
/// println!("{} training images, teacher: {}", plan.train_images(), plan.teacher_source());
/// let report = plan.run(&mut kd_train::NoProgress)?;
/// print!("{}", report.table());
/// # anyhow::Ok(())
/// ```
pub struct Plan {
    pub(crate) config_path: PathBuf,
    pub(crate) cfg: RunConfig,
    pub(crate) warnings: Vec<String>,
    pub(crate) out: PathBuf,
    pub(crate) resume: bool,
    /// The launcher's environment when this process is one rank of several.
    pub(crate) launch: Option<LaunchEnv>,
    pub(crate) data: RunData,
    /// The students' training images: the training split or a seeded subset of it.
    pub(crate) student_train: ImageDataset,
    /// The distilled student's: `student_train` and the unlabeled images, if any.
    pub(crate) distill_train: ImageDataset,
    /// `[channels, height, classes]` of every model.
    pub(crate) shape: [usize; 3],
    pub(crate) device: Device,
    /// The logit loss (`None` for FitNets, whose hint is built with the student).
    pub(crate) logit_loss: Option<Box<dyn DistillLoss>>,
    /// The resolved config as written to `config.toml` ([`crate::resolved::written_toml`]).
    pub(crate) resolved: String,
    /// The checkpoints' fingerprint of the canonical config.
    pub(crate) fingerprint: String,
    /// The teacher from outside kd (TorchScript, ONNX), loaded and checked here (taken by
    /// the teacher phase).
    pub(crate) outside: Option<OutsideTeacher>,
    /// That teacher as the teacher phase built it, kept for the students of a piecewise
    /// run ([`Plan::train_teacher`] then [`Plan::saved_teacher`]).
    pub(crate) outside_model: Option<Model>,
    /// The teacher logits file (`teacher.logits`), read and checked against the run's
    /// images here (taken by the teacher phase).
    pub(crate) logits: Option<TeacherLogits>,
    pub(crate) started: Instant,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("config_path", &self.config_path)
            .field("out", &self.out)
            .field("shape", &self.shape)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Where the run's teacher comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherSource {
    /// A file from outside kd (a TorchScript module, an ONNX model), loaded and probed on
    /// the run's images.
    Outside {
        /// `TorchScript module` or `ONNX model`.
        format: &'static str,
        /// The file (`teacher.torchscript`, `teacher.onnx`), or an ensemble's files.
        files: Vec<PathBuf>,
        /// The module's parameter count (an ONNX file's weight elements).
        parameters: usize,
        /// What `[teacher.input]` does to the run's images (`None`: nothing).
        bridge: Option<String>,
        /// What `teacher.class_map` does to the teacher's classes (empty: no map).
        class_maps: Vec<String>,
    },
    /// A kd model file (`teacher.checkpoint`).
    Checkpoint(PathBuf),
    /// A teacher logits file (`teacher.logits`), checked against the run's images.
    Logits {
        /// The file.
        path: PathBuf,
        /// The teacher that made it, as its header says.
        teacher: String,
    },
    /// Trained by the run, for up to `epochs` epochs.
    Trained {
        /// `teacher.train.epochs`.
        epochs: usize,
    },
}

impl std::fmt::Display for TeacherSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Outside {
                format,
                files,
                parameters,
                bridge,
                class_maps,
            } => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                let of = if files.len() > 1 { " of" } else { "" };
                write!(
                    f,
                    "{format}{of} {} ({parameters} parameters)",
                    names.join(", ")
                )?;
                if let Some(b) = bridge {
                    write!(f, ", fed the images {b}")?;
                }
                class_maps.iter().try_for_each(|m| write!(f, ", {m}"))
            }
            Self::Checkpoint(path) => write!(f, "loaded from {}", path.display()),
            Self::Logits { path, teacher } => {
                write!(f, "logits from {} (made by {teacher})", path.display())
            }
            Self::Trained { epochs } => write!(f, "trained for up to {epochs} epochs"),
        }
    }
}

impl Plan {
    /// Resolves `config_path` with `overrides` and checks it against the data, the models,
    /// the device and the ranks (under a launcher); errors name the file and key.
    pub fn new(config_path: &Path, overrides: &RunOverrides) -> Result<Self> {
        let started = Instant::now();
        let (cfg, warnings) = resolve_config(config_path, overrides)?;
        let out = run_dir(&cfg, overrides)?;
        if overrides.resume.is_some() {
            // Before anything is written: a mismatch leaves the directory as it was.
            crate::resume::check_same_config(&out, &cfg)?;
        }
        let mut plan = Self::resolved(config_path, cfg, out, None)?;
        plan.warnings = warnings;
        plan.resume = overrides.resume.is_some();
        plan.started = started;
        Ok(plan)
    }

    /// The plan of `cfg` (resolved and validated, read from `config_path`), writing to
    /// `out` and resuming its checkpoints; its data read, or `data` when given (the same
    /// dataset and split: a tune's trials of one seed share it).
    pub(crate) fn resolved(
        config_path: &Path,
        cfg: RunConfig,
        out: PathBuf,
        data: Option<&RunData>,
    ) -> Result<Self> {
        let started = Instant::now();
        keep_freed_memory(cfg.precision());
        // Under torchrun or `kd-cli launch`: this process is one rank of several.
        let launch = launch_env(|k| std::env::var(k).ok())
            .map_err(|e| anyhow::anyhow!("distributed launch environment: {e}"))?;
        let resolved = crate::resolved::written_toml(&cfg)?;
        let fingerprint = crate::resume::fingerprint(&crate::resolved::canonical_toml(&cfg)?);
        let data = match data {
            Some(data) => data.clone(),
            None => load_data(&cfg)?,
        };
        let [c, h, _] = cfg.data.transform.output_shape(data.train.image_shape());
        let shape = [c, h, data.train.classes()];
        let device = plan_device(&cfg, launch.as_ref())?;
        let mut plan = Self {
            config_path: config_path.to_path_buf(),
            student_train: data.train.clone(),
            distill_train: data.train.clone(),
            cfg,
            warnings: Vec::new(),
            out,
            resume: true,
            launch,
            data,
            shape,
            device,
            logit_loss: None,
            resolved,
            fingerprint,
            outside: None,
            outside_model: None,
            logits: None,
            started,
        };
        plan.check()?;
        Ok(plan)
    }

    /// The checks of [`Plan::new`] once the data is read.
    fn check(&mut self) -> Result<()> {
        let (cfg, config_path) = (&self.cfg, self.config_path.as_path());
        let invalid = || format!("{}: invalid config", config_path.display());
        let [_, h, classes] = self.shape;
        for (key, model) in [
            ("teacher.model", &cfg.teacher.model),
            ("student.model", &cfg.student.model),
        ] {
            if let kd_models::ModelConfig::SimKd(_) = model {
                bail!("{}: {key}.kind: expected an architecture; kind = \"simkd\" is what kd records for a SimKD student (set distill.loss = \"simkd\")", config_path.display());
            }
            model.validate(key, h).with_context(invalid)?;
        }
        prepare_device(self.device);
        if cfg.threads > 0 {
            tch::set_num_threads(cfg.threads as i32);
        }
        self.logit_loss = match &cfg.distill.loss {
            feature if feature.is_feature() => None,
            logits => Some(logits.build("distill")?),
        };
        if let Some(loss) = &self.logit_loss {
            loss.check_classes(classes).with_context(invalid)?;
        }
        self.outside = check_teacher(cfg, config_path, self.shape, self.device)?;
        let StudentSets { labelled, distill } = student_sets(cfg, &self.data, config_path)?;
        let features =
            check_feature_loss(cfg, config_path, self.shape, distill.len(), self.device)?;
        check_ranks(cfg, self.world_size(), &distill, &self.data).with_context(invalid)?;
        let loss = (self.logit_loss.as_deref(), features);
        let parallel = self.launch.is_some();
        check_graph_requests(cfg, loss, &distill, classes, self.device, parallel)
            .with_context(invalid)?;
        let logits = match &cfg.teacher.logits {
            Some(path) => {
                let splits = [&distill, &self.data.val, &self.data.test];
                Some(TeacherLogits::read(path, splits, classes).with_context(invalid)?)
            }
            None => None,
        };
        (self.student_train, self.distill_train, self.logits) = (labelled, distill, logits);
        Ok(())
    }

    /// The resolved config: defaults filled in, overrides applied, `auto` precision resolved.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The resolved config as the run directory's `config.toml` holds it.
    pub fn config_toml(&self) -> &str {
        &self.resolved
    }

    /// What the config's resolution warns of (an override that drops keys of the file, a
    /// data directory of another dataset).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where the run writes.
    pub fn run_dir(&self) -> &Path {
        &self.out
    }

    /// The device every model runs on (this rank's GPU under a launcher).
    pub fn device(&self) -> Device {
        self.device
    }

    /// `[channels, height, width]` of the models' input, after the transform.
    pub fn input_shape(&self) -> [usize; 3] {
        let [c, h, _] = self.shape;
        [c, h, h]
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.shape[2]
    }

    /// The teacher's training images.
    pub fn train_images(&self) -> usize {
        self.data.train.len()
    }

    /// The validation images.
    pub fn validation_images(&self) -> usize {
        self.data.val.len()
    }

    /// The test images.
    pub fn test_images(&self) -> usize {
        self.data.test.len()
    }

    /// The students' labelled training images.
    pub fn student_images(&self) -> usize {
        self.student_train.len()
    }

    /// The distilled student's unlabeled images (a transfer set), taught by the teacher alone.
    pub fn unlabeled_images(&self) -> usize {
        self.distill_train.len() - self.distill_train.labelled_len()
    }

    /// Where the teacher comes from.
    pub fn teacher_source(&self) -> TeacherSource {
        let teacher = &self.cfg.teacher;
        if let (Some(path), Some(file)) = (&teacher.logits, &self.logits) {
            return TeacherSource::Logits {
                path: path.clone(),
                teacher: file.teacher.clone(),
            };
        }
        match (&self.outside, &teacher.checkpoint) {
            (Some(t), _) => TeacherSource::Outside {
                format: t.describe(),
                files: t.files().iter().map(|(p, _)| p.clone()).collect(),
                parameters: t.parameters(),
                bridge: t.bridge().and_then(|b| b.describe(self.shape[1])),
                class_maps: t.class_notes().to_vec(),
            },
            (_, Some(path)) => TeacherSource::Checkpoint(path.clone()),
            _ => TeacherSource::Trained {
                epochs: teacher.train.epochs,
            },
        }
    }

    /// Whether the teacher's logits are computed once and cached (else the teacher runs live
    /// on every student batch).
    pub fn caches_teacher_logits(&self) -> bool {
        self.cfg.caches_teacher_logits()
    }

    /// The data directory a model file of this run records: the config's, as an absolute
    /// path, unless it is the dataset's default directory (which `eval` reads anyway).
    pub fn recorded_data_dir(&self) -> Option<PathBuf> {
        let data = &self.cfg.data;
        let dir = data.dir();
        (dir != data.dataset.default_dir()).then(|| std::path::absolute(&dir).unwrap_or(dir))
    }

    /// The teacher from outside kd the plan loaded and probed, as a kd [`Model`] (taken:
    /// the plan's own run would load it again).
    pub fn outside_teacher_model(&mut self) -> Result<Model> {
        let teacher = self
            .outside
            .take()
            .context("the config names no teacher.torchscript or teacher.onnx")?;
        Ok(teacher.into_model(self.device))
    }

    /// The processes of the run: the launcher's world size, or 1.
    pub fn world_size(&self) -> usize {
        self.launch.as_ref().map_or(1, |l| l.rendezvous.world_size)
    }
}

/// The configured device; under a launcher, CUDA means this rank's GPU (one GPU per rank on
/// each machine).
fn plan_device(cfg: &RunConfig, launch: Option<&LaunchEnv>) -> Result<Device> {
    Ok(match (cfg.device.resolve("device")?, launch) {
        (Device::Cuda(_), Some(env)) => Device::Cuda(env.local_rank),
        (device, _) => device,
    })
}

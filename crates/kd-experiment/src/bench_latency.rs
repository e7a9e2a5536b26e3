//! `kd-cli bench --mode latency MODEL...`: batch-1 latency and batch-256 throughput of saved
//! and exported models side by side, in one run, on this machine ([`crate::latency`]):
//!
//! - a `.safetensors` model in libtorch (its preprocessing included in each call, as an
//!   exported file has it built in), on one thread and on all of libtorch's threads;
//! - an `.onnx` file in tract (kd's Rust runtime, one thread) and in onnxruntime, the
//!   runtime users deploy with, through `scripts/onnx_latency.py` in the venv's Python
//!   (`cargo xtask setup`); without it the onnxruntime row says so;
//! - a TorchScript teacher (`.pt`) in libtorch, with `--config` naming the run config that
//!   states its input contract ([`crate::eval_torchscript`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use kd_data::TransformConfig;
use kd_models::Model;
use kd_onnx::runtime::OnnxRunner;
use tch::{Device, Tensor};

use crate::latency::{Latency, ModelLatency, CALLS, WARMUP};

/// One measured model in one runtime.
#[derive(Debug, Clone)]
pub struct LatencyRow {
    /// The model file, as named.
    pub model: String,
    /// `libtorch <precision>` (e.g. `libtorch f32`), `tract` or `onnxruntime`.
    pub runtime: String,
    /// Size of the model file, in bytes.
    pub file_bytes: u64,
    /// Batch-1 latency on one thread; `None` where the runtime did not run.
    pub one_thread: Option<Latency>,
    /// With the thread count.
    pub all_threads: Option<(Latency, usize)>,
    /// Images per second at batch 256; `None` where the runtime did not run.
    pub batch256_images_per_s: Option<f64>,
    /// Why a runtime did not run.
    pub note: Option<String>,
}

/// Measures every model file; an error names a file that is neither kind. A TorchScript
/// teacher (`.pt`) is timed as the run of `config` would call it (its input contract).
pub fn bench_latency(
    models: &[PathBuf],
    python: Option<&Path>,
    config: Option<&Path>,
) -> Result<Vec<LatencyRow>> {
    if models.is_empty() {
        bail!("--mode latency: name the model files to time, e.g. `kd-cli bench --mode latency runs/quickstart/seed-1/teacher.safetensors runs/quickstart/seed-1/distilled.safetensors distilled.int8.onnx`");
    }
    let mut rows = Vec::new();
    for path in models {
        let file_bytes = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read", path.display()))?
            .len();
        let base = LatencyRow {
            model: path.display().to_string(),
            runtime: String::new(),
            file_bytes,
            one_thread: None,
            all_threads: None,
            batch256_images_per_s: None,
            note: None,
        };
        if crate::onnx_model::is_onnx(path) {
            rows.extend(onnx_rows(path, python, base)?);
        } else if crate::eval_torchscript::is_torchscript(path) {
            let mut plan =
                crate::eval_torchscript::plan_for_module(path, config, None, Device::Cpu, "time")?;
            let shape = plan.input_shape();
            let model = plan.outside_teacher_model()?;
            let transform = plan.config().data.transform.clone();
            rows.push(libtorch_row(&model, shape, &transform, base));
        } else {
            let (model, info) = crate::saved_model::open_as_trained(path, Device::Cpu)?;
            rows.push(libtorch_row(
                &model,
                info.input_shape,
                &info.transform,
                base,
            ));
        }
    }
    Ok(rows)
}

/// An ONNX file in tract, then in onnxruntime (through `python`, where there is one).
fn onnx_rows(path: &Path, python: Option<&Path>, base: LatencyRow) -> Result<[LatencyRow; 2]> {
    let runtime = |name: &str| LatencyRow {
        runtime: name.into(),
        ..base.clone()
    };
    let tract = LatencyRow {
        one_thread: Some(tract_latency(path, 1)?),
        batch256_images_per_s: Some(256.0 / (tract_latency(path, 256)?.median_ms / 1e3)),
        ..runtime("tract")
    };
    let onnxruntime = match python {
        Some(python) => {
            let l = onnxruntime_latency(python, path)?;
            LatencyRow {
                one_thread: Some(l.one_thread),
                all_threads: Some((l.all_threads, l.threads)),
                batch256_images_per_s: Some(l.batch256_images_per_s),
                ..runtime("onnxruntime")
            }
        }
        None => LatencyRow {
            note: Some("no venv with onnxruntime (run `cargo xtask setup`)".into()),
            ..runtime("onnxruntime")
        },
    };
    Ok([tract, onnxruntime])
}

/// `model` in libtorch on the CPU, its preprocessing `transform` included in each call, on
/// images of `shape`.
fn libtorch_row(
    model: &Model,
    shape: [usize; 3],
    transform: &TransformConfig,
    base: LatencyRow,
) -> LatencyRow {
    let shape = shape.map(|d| d as i64);
    let l = crate::latency::measure_forward(shape, Device::Cpu, |x: &Tensor| {
        model.forward_t(&transform.apply_unit(x), false)
    });
    LatencyRow {
        one_thread: Some(l.one_thread),
        all_threads: Some((l.all_threads, l.threads)),
        batch256_images_per_s: Some(l.batch256_images_per_s),
        runtime: format!("libtorch {}", model.precision().name()),
        ..base
    }
}

/// Batch-`batch` call times of an ONNX file in tract (one thread).
fn tract_latency(path: &Path, batch: usize) -> Result<Latency> {
    let runner = OnnxRunner::load(path, batch)?;
    let images = vec![0.5f32; batch * runner.image_len()];
    let mut failed = None;
    let (warmup, calls) = if batch == 1 { (WARMUP, CALLS) } else { (1, 5) };
    let latency = Latency::measure(
        || {
            if let Err(e) = runner.run(&images, batch) {
                failed = Some(e);
            }
        },
        warmup,
        calls,
    );
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(latency),
    }
}

/// onnxruntime's measurement of an ONNX file (`scripts/onnx_latency.py`).
fn onnxruntime_latency(python: &Path, path: &Path) -> Result<ModelLatency> {
    let script = repository_root()
        .map(|r| r.join("scripts/onnx_latency.py"))
        .context("scripts/onnx_latency.py not found (run from the kd repository)")?;
    let out = Command::new(python)
        .arg(script)
        .arg(path)
        .arg(CALLS.to_string())
        .arg(WARMUP.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        bail!("{}: onnxruntime cannot run it: {last}", path.display());
    }
    serde_json::from_slice(&out.stdout).context("onnx_latency.py printed no measurement")
}

/// The kd repository: the current directory or the one the binary was built in, whichever
/// holds `scripts/onnx_latency.py`.
fn repository_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    let built_in = exe
        .iter()
        .flat_map(|e| e.ancestors().skip(1).take(3).map(Path::to_path_buf));
    cwd.into_iter()
        .chain(built_in)
        .find(|d| d.join("scripts/onnx_latency.py").is_file())
}

/// The venv's Python that `cargo xtask setup` made (`KD_VENV`, or `.venv` in the
/// repository), if it has onnxruntime.
pub fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("KD_VENV")
        .map(PathBuf::from)
        .or_else(|| repository_root().map(|r| r.join(".venv")))?;
    let python = venv.join("bin/python");
    let has_onnxruntime = Command::new(&python)
        .args(["-c", "import onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_onnxruntime.then_some(python)
}

/// The rows as a table.
pub fn text(rows: &[LatencyRow]) -> String {
    let ms = |l: Option<Latency>| {
        l.map_or("-".to_string(), |l| {
            format!("{:.3} / {:.3}", l.median_ms, l.p99_ms)
        })
    };
    let threads = rows
        .iter()
        .find_map(|r| r.all_threads.map(|(_, t)| t))
        .unwrap_or(1);
    let width = rows.iter().map(|r| r.model.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "batch-1 latency in ms (median / p99 of {CALLS} calls after {WARMUP}), throughput at batch 256\n{:<width$} {:<13} {:>10} {:>19} {:>19} {:>10}\n",
        "model",
        "runtime",
        "file bytes",
        "1 thread",
        crate::report::threads(threads),
        "b256 img/s"
    );
    for r in rows {
        out += &format!(
            "{:<width$} {:<13} {:>10} {:>19} {:>19} {:>10}\n",
            r.model,
            r.runtime,
            r.file_bytes,
            ms(r.one_thread),
            ms(r.all_threads.map(|(l, _)| l)),
            r.batch256_images_per_s
                .map_or("-".to_string(), |v| format!("{v:.0}"))
        );
        if let Some(note) = &r.note {
            out += &format!("  {note}\n");
        }
    }
    out
}

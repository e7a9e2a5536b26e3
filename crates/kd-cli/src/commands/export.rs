//! `kd-cli export MODEL --format torchscript|onnx [--quantize int8] --out PATH`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use kd_experiment::export::export;
use kd_experiment::export_onnx::{export_onnx, OnnxOptions, Quantize};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A `.safetensors` file from a run directory.
    model: PathBuf,
    /// The output format: `torchscript` (a traced module for `torch.jit.load`, C++
    /// `torch::jit::load` and tch's `CModule`) or `onnx`.
    #[arg(long, default_value = "torchscript")]
    format: String,
    /// Where to write the exported file, e.g. distilled.pt or distilled.onnx.
    #[arg(long)]
    out: PathBuf,
    /// `int8`: static post-training quantization (ONNX only): int8 weights per output
    /// channel, uint8 activations per tensor calibrated on training images.
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    /// Training images that calibrate the int8 activation ranges (the first N; default
    /// 1,000, or all the training images where there are fewer).
    #[arg(long)]
    calibration_images: Option<usize>,
    /// The dataset's directory, for calibration and the exported file's test accuracy
    /// (default: the one the model was trained on, as its file records).
    #[arg(long)]
    data: Option<PathBuf>,
    /// libtorch CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        super::set_threads(self.threads);
        match self.format.as_str() {
            "onnx" => {
                let options = OnnxOptions {
                    quantize: self.quantize,
                    calibration_images: self.calibration_images,
                    data: self.data,
                };
                print!("{}", export_onnx(&self.model, &self.out, &options)?.text());
            }
            format if self.quantize.is_some() => {
                bail!("--quantize: only with --format onnx (got --format {format})")
            }
            format => {
                export(&self.model, format, &self.out)?;
                let out = self.out.display();
                println!("wrote {out} (TorchScript; input: float images in [0, 1])");
            }
        }
        Ok(())
    }
}

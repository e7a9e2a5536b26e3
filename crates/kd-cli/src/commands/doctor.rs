//! `kd-cli doctor`: checks that this machine runs kd correctly.

use anyhow::bail;
use clap::Args;
use kd_experiment::config::DeviceChoice;
use kd_experiment::{doctor, env};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// `cpu`, `cuda`, or `auto` (CUDA when available).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

impl DoctorArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let device = self.device.resolve("--device")?;
        env::prepare_device(device);
        let report = doctor::doctor(device)?;
        print!("{}", report.text());
        if !report.healthy() {
            bail!("doctor: some checks failed (see the table above)");
        }
        Ok(())
    }
}

//! The quickstart through the library: `cargo run --release -p kd-experiment --example
//! quickstart [CONFIG]` runs configs/quickstart.toml (or CONFIG) as `kd-cli run` does,
//! without progress bars, and prints the report's table.

use std::path::PathBuf;

use kd_experiment::run::{run, RunOverrides};

fn main() -> anyhow::Result<()> {
    let config = std::env::args()
        .nth(1)
        .unwrap_or("configs/quickstart.toml".into());
    let report = run(
        &PathBuf::from(config),
        &RunOverrides::default(),
        &mut kd_train::NoProgress,
    )?;
    print!("{}", report.table());
    Ok(())
}

//! Run configs, as `kd-cli run` loads them: any text gives a config or a one-line error.
#![no_main]

use kd_experiment::config::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    if let Ok(config) = RunConfig::parse_with(text, path, &[]) {
        // What parses must validate or fail cleanly, and serialize back.
        let _ = config.validate();
        let _ = config.to_toml();
    }
});

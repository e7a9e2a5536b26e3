//! The config fuzzer's corpus (`fuzz/corpus/config`) and any inputs that once crashed it
//! (`fuzz/regressions/config`), replayed through the config loader on every test run: a
//! config or an error, never a panic.

use kd_experiment::config::RunConfig;

#[test]
fn config_corpus_replays_without_panics() {
    let files = kd_testkit::fuzz_inputs(env!("CARGO_MANIFEST_DIR"), "config");
    assert!(files.len() >= 4, "the config corpus is missing");
    let mut parsed = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Ok(config) = RunConfig::parse_with(&text, file, &[]) {
            let _ = config.validate();
            let _ = config.to_toml();
            parsed += 1;
        }
    }
    assert!(parsed >= 4, "the repository's configs parse");
}

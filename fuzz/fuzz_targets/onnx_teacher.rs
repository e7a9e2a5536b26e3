//! ONNX files given as teachers: `kd_onnx::OnnxTeacher::load` (the header reader, tract's
//! loader and optimizer, the input and output checks) on a 28x28 grey, 10-class run.
//! tract panics on some malformed graphs; kd catches those panics and returns an error.
//! libFuzzer's panic hook aborts on any panic, caught or not, so the target sets it aside:
//! a panic that escapes kd still ends the process (libfuzzer-sys aborts on it), and is the
//! crash this target looks for.
#![no_main]

use std::sync::Once;

use kd_models::TeacherInput;
use kd_onnx::OnnxTeacher;
use libfuzzer_sys::fuzz_target;

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let path = std::env::temp_dir().join(format!("kd-fuzz-{}.onnx", std::process::id()));
    std::fs::write(&path, data).expect("the temporary directory is writable");
    let _ = OnnxTeacher::load(&path, &TeacherInput::default(), [1, 28], None);
});

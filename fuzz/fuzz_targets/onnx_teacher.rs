//! ONNX files given as teachers: `kd_onnx::OnnxTeacher::load` (the header reader, tract's
//! loader and optimizer, the input and output checks) on a 28x28 grey, 10-class run.
#![no_main]

use kd_models::TeacherInput;
use kd_onnx::OnnxTeacher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kd-fuzz-{}.onnx", std::process::id()));
    std::fs::write(&path, data).expect("the temporary directory is writable");
    let _ = OnnxTeacher::load(&path, &TeacherInput::default(), [1, 28], 10);
});

//! Compiles `src/shim.cpp` against the libtorch headers that torch-sys found.

use std::path::PathBuf;

fn main() {
    kd_build::link_libtorch();
    for file in ["src/shim.cpp", "src/c10d.cpp", "src/guard.hpp", "gloo-decl"] {
        println!("cargo:rerun-if-changed={file}");
    }
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    // torch-sys reports `<libtorch>/lib`; the headers are in `<libtorch>/include`.
    let include = lib.parent().expect("lib has a parent").join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("src/shim.cpp")
        .file("src/c10d.cpp")
        // Declarations for the Gloo types ProcessGroupGloo.hpp names (see the README there).
        .include("gloo-decl")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("kd_shim");
}

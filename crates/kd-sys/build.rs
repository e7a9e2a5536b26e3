//! Compiles the shim (`src/*.cpp`) against the libtorch headers that torch-sys found, with
//! its CUDA part (`src/cuda.cpp`: CUDA graphs, NCCL) where libtorch has CUDA and the CUDA
//! and NCCL headers are found, and `src/cuda_stub.cpp` (the same functions, failing with the
//! reason) otherwise.

use std::path::{Path, PathBuf};

fn main() {
    kd_build::link_libtorch();
    for file in [
        "src/shim.cpp",
        "src/c10d.cpp",
        "src/script_module.cpp",
        "src/cuda.cpp",
        "src/cuda_stub.cpp",
        "src/cuda.hpp",
        "src/guard.hpp",
        "gloo-decl",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=NCCL_INCLUDE_DIR");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    // torch-sys reports `<libtorch>/lib`; the headers are in `<libtorch>/include`.
    let include = lib.parent().expect("lib has a parent").join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("src/shim.cpp")
        .file("src/c10d.cpp")
        .file("src/script_module.cpp")
        // Declarations for the Gloo types ProcessGroupGloo.hpp names (see the README there).
        .include("gloo-decl")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-interference-size")
        .warnings(false);
    match cuda_includes(&lib) {
        Some(cuda) => {
            build.file("src/cuda.cpp").includes(&cuda.include);
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
            // The headers' inline code calls the CUDA runtime directly.
            println!(
                "cargo:rustc-link-search=native={}",
                cuda.runtime_dir.display()
            );
            println!(
                "cargo:rustc-link-arg=-Wl,-rpath,{}",
                cuda.runtime_dir.display()
            );
            println!("cargo:rustc-link-lib=dylib:+verbatim={}", cuda.runtime);
        }
        None => {
            if lib.join("libtorch_cuda.so").exists() {
                println!(
                    "cargo:warning=kd-sys: libtorch has CUDA but the CUDA and NCCL headers were not found (pip install nvidia-cuda-cccl nvidia-cuda-crt next to torch, or set CUDA_HOME and NCCL_INCLUDE_DIR); building without CUDA graphs and NCCL"
                );
            }
            build.file("src/cuda_stub.cpp");
        }
    }
    build.compile("kd_shim");
}

/// What the CUDA part is built with.
struct CudaBuild {
    include: Vec<PathBuf>,
    /// The directory of the CUDA runtime library, and its file name.
    runtime_dir: PathBuf,
    runtime: String,
}

/// What the CUDA part needs, if libtorch has CUDA and every header and the CUDA runtime are
/// found: the pip wheels' `nvidia/cu13` and `nvidia/nccl` next to `torch/`, or a CUDA
/// toolkit at `$CUDA_HOME` with NCCL at `$NCCL_INCLUDE_DIR` (or in the toolkit).
fn cuda_includes(libtorch_lib: &Path) -> Option<CudaBuild> {
    if !libtorch_lib.join("libtorch_cuda.so").exists() {
        return None;
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    // Through links (the workspace's `.libtorch` points into the venv) to `site-packages`.
    let lib = libtorch_lib
        .canonicalize()
        .unwrap_or_else(|_| libtorch_lib.to_path_buf());
    if let Some(site) = lib.parent().and_then(Path::parent) {
        let nvidia = site.join("nvidia");
        // Headers installed later (`cargo xtask setup`) bring the CUDA part in.
        println!("cargo:rerun-if-changed={}", nvidia.display());
        if let Ok(entries) = std::fs::read_dir(&nvidia) {
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join("include"))
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            candidates.extend(dirs);
        }
    }
    for var in ["CUDA_HOME", "NCCL_INCLUDE_DIR"] {
        if let Some(dir) = std::env::var_os(var).map(PathBuf::from) {
            candidates.push(dir.join("include"));
            candidates.push(dir);
        }
    }
    let needed = [
        "cuda_runtime_api.h",
        "crt/host_config.h",
        "nv/target",
        "nccl.h",
    ];
    let found: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|dir| needed.iter().any(|h| dir.join(h).exists()))
        .collect();
    if !needed
        .iter()
        .all(|h| found.iter().any(|dir| dir.join(h).exists()))
    {
        return None;
    }
    // The runtime sits in `lib/` or `lib64/` beside the `include/` that has its headers.
    let runtime_root = found
        .iter()
        .find(|dir| dir.join("cuda_runtime_api.h").exists())?
        .parent()?
        .to_path_buf();
    let (runtime_dir, runtime) = ["lib", "lib64"].iter().find_map(|sub| {
        let dir = runtime_root.join(sub);
        kd_build::cuda_runtime_in(&dir).map(|name| (dir, name))
    })?;
    Some(CudaBuild {
        include: found,
        runtime_dir,
        runtime,
    })
}

//! Build-script helper for every crate that links libtorch through `torch-sys`, in this
//! workspace or in yours.
//!
//! torch-sys links libtorch dynamically but gives the resulting binaries no rpath, so a
//! binary (or test binary) would only start with `LD_LIBRARY_PATH` set. Calling
//! [`link_libtorch`] from a crate's `build.rs` embeds libtorch's `lib/` directory as an
//! rpath, and forces `libtorch_cuda.so` to stay a `NEEDED` entry when it exists: the
//! linker's default `--as-needed` would otherwise drop it, and `tch::Cuda::is_available()`
//! would report `false` even on a GPU machine.
//!
//! Where libtorch is: `DEP_TCH_LIBTORCH_LIB`, which torch-sys exports to the build scripts of
//! crates that depend on it directly; otherwise `$LIBTORCH/lib` (the variable torch-sys itself
//! reads), so that a crate depending only on `kd-core` needs just this in its `build.rs`:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     kd_build::link_libtorch();
//! }
//! ```

use std::path::PathBuf;

/// Where libtorch's shared libraries are, as this build script can tell.
pub fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        return Some(PathBuf::from(lib));
    }
    let root = PathBuf::from(std::env::var_os("LIBTORCH")?);
    // A relative LIBTORCH (as in a `.cargo/config.toml` without `relative = true`) is
    // relative to the directory cargo was started in, which build scripts do not know.
    let lib = root.join("lib");
    lib.is_dir().then(|| lib.canonicalize().unwrap_or(lib))
}

/// Emits the linker arguments described in the module documentation.
///
/// Prints a cargo warning (instead of failing) when libtorch cannot be found, naming what
/// to set: the build then still works, and binaries need `LD_LIBRARY_PATH` to start.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(lib) = libtorch_lib_dir() else {
        println!(
            "cargo:warning=kd-build: libtorch not found: set LIBTORCH to the libtorch (or site-packages/torch) directory torch-sys builds against"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        // kd-sys's CUDA part links the CUDA runtime itself; pip installs it beside torch.
        if let Some(dir) = cuda_runtime_dir(&lib) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        }
    }
}

/// The file name of the CUDA runtime library in `dir` (`libcudart.so` or a versioned
/// `libcudart.so.N`), if there is one.
pub fn cuda_runtime_in(dir: &std::path::Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("libcudart.so"))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The directory of the CUDA runtime (`libcudart.so*`) that a pip-installed CUDA torch
/// uses: `site-packages/nvidia/<cuda>/lib`, beside `site-packages/torch/lib`.
pub fn cuda_runtime_dir(libtorch_lib: &std::path::Path) -> Option<PathBuf> {
    let lib = libtorch_lib.canonicalize().ok()?;
    let nvidia = lib.parent()?.parent()?.join("nvidia");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(nvidia)
        .ok()?
        .flatten()
        .map(|e| e.path().join("lib"))
        .filter(|dir| cuda_runtime_in(dir).is_some())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

//! Build-script helper shared by every crate that links libtorch through `torch-sys`.
//!
//! torch-sys links libtorch dynamically but gives the resulting binaries no rpath, so a
//! binary (or test binary) would only start with `LD_LIBRARY_PATH` set. Calling
//! [`link_libtorch`] from a crate's `build.rs` embeds libtorch's `lib/` directory as an
//! rpath, and forces `libtorch_cuda.so` to stay a `NEEDED` entry when it exists: the
//! linker's default `--as-needed` would otherwise drop it, and `tch::Cuda::is_available()`
//! would report `false` even on a GPU machine.
//!
//! The crate calling this must depend on `torch-sys` directly, so that cargo hands its build
//! script the `DEP_TCH_LIBTORCH_LIB` variable that torch-sys exports.

use std::path::Path;

/// Emits the linker arguments described in the module documentation.
///
/// Prints a cargo warning (instead of failing) when `DEP_TCH_LIBTORCH_LIB` is missing, which
/// only happens when the calling crate forgot its direct `torch-sys` dependency.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: add torch-sys as a direct dependency"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

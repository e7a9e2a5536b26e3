//! Links libtorch (rpath), so that `kd-cli` starts without `LD_LIBRARY_PATH`.

fn main() {
    kd_build::link_libtorch();
}

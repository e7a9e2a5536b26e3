//! Fuzz binaries link libtorch (through kd-data's tch) and need its rpath like every kd binary.
fn main() {
    kd_build::link_libtorch();
}

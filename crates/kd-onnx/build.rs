fn main() {
    kd_build::link_libtorch();
}

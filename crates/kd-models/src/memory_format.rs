//! Channels-last (NHWC) memory format without a memory-format API: tch 0.24 exposes none,
//! but libtorch decides a tensor's format from its strides, so a 4-d tensor copied into
//! NHWC strides (`empty_strided` + `copy_`) is channels-last to every kernel, and
//! convolutions given channels-last inputs or weights take oneDNN's NHWC path (PyTorch's
//! `x.to(memory_format=torch.channels_last)` does the same). Gradients and Adam's state,
//! created with `*_like`, keep the format.

use tch::Tensor;

/// A channels-last copy of a 4-d tensor `[n, c, h, w]` (other tensors are returned as is).
pub fn channels_last(t: &Tensor) -> Tensor {
    let size = t.size();
    let [_, c, h, w] = size[..] else {
        return t.shallow_clone();
    };
    let strides = [h * w * c, 1, w * c, c];
    let out = Tensor::empty_strided(&size, strides, (t.kind(), t.device()));
    tch::no_grad(|| out.shallow_clone().copy_(t));
    out
}

/// Whether a 4-d tensor has channels-last strides.
pub fn is_channels_last(t: &Tensor) -> bool {
    let size = t.size();
    let [_, c, h, w] = size[..] else {
        return false;
    };
    t.stride() == [h * w * c, 1, w * c, c]
}

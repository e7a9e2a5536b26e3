//! mixup (Zhang, Cisse, Dauphin & Lopez-Paz 2018, "mixup: Beyond Empirical Risk
//! Minimization", ICLR) as consistent teaching uses it (Beyer et al. 2022, "Knowledge
//! distillation: A good teacher is patient and consistent", CVPR): one `λ ~ Beta(α, α)` per
//! batch, each image mixed with a random partner from the same batch,
//! `λ·x + (1 − λ)·x[perm]`. Teacher and student see the same mixed images; the label term
//! becomes `λ·CE(y) + (1 − λ)·CE(y[perm])`, and an unlabeled partner adds no label term.
//! `λ` and the permutation are drawn from libtorch's CPU generator (two tiny draws per batch;
//! its state is in every checkpoint), so a seeded run mixes the same way every time, and
//! they move to the batch's device without a host read. Under data parallelism each rank
//! mixes within its own share of the batch. Training accuracy of a mixed batch compares
//! predictions with each image's own label.

use tch::{Device, Kind, Tensor};

/// A batch after mixup.
#[derive(Debug)]
pub struct Mixed {
    /// `λ·x + (1 − λ)·x[perm]`.
    pub images: Tensor,
    /// Each row's partner's label, `y[perm]`.
    pub partner_labels: Tensor,
    /// `λ`, a 0-dimensional float tensor on the batch's device.
    pub lambda: Tensor,
}

/// Mixes `images` `[b, ...]` (float) with labels `[b]` at `Beta(alpha, alpha)`; `alpha` must
/// be `> 0` (0 turns mixup off and is never passed here).
pub fn mix(images: &Tensor, labels: &Tensor, alpha: f64) -> Mixed {
    let device = images.device();
    let b = images.size()[0];
    let concentration = Tensor::from_slice(&[alpha, alpha]).to_kind(Kind::Float);
    // Dirichlet(α, α)'s first component is Beta(α, α); drawn on the CPU generator (one tiny
    // draw) and moved without a sync.
    let lambda = concentration
        .internal_sample_dirichlet()
        .get(0)
        .to_device(device);
    let perm = Tensor::randperm(b, (Kind::Int64, Device::Cpu)).to_device(device);
    let partners = images.index_select(0, &perm);
    let weight = lambda.to_kind(images.kind());
    let mixed = images * &weight + partners * (1.0 - &weight);
    Mixed {
        images: mixed,
        partner_labels: labels.index_select(0, &perm),
        lambda,
    }
}

//! CRD against the authors' code's arithmetic (HobbitLong/RepDistiller `crd/memory.py` and
//! `crd/criterion.py`, restated in PyTorch 2.11, float64) for fixed heads, memory banks and
//! negatives: the contrastive term, its gradient with respect to the student's feature and
//! head, the normalizing constants fixed at the first batch and the banks' momentum update;
//! then a validation batch leaves the banks alone, a bank no larger than the negatives is
//! refused, and CRD's steps are not captured in CUDA graphs. The Python:
//!
//! ```python
//! import torch, torch.nn.functional as F
//! torch.set_default_dtype(torch.float64)
//! def pattern(shape, a, b):
//!     n = 1
//!     for d in shape: n *= d
//!     return torch.sin(torch.arange(n, dtype=torch.float64) * a + b).reshape(shape)
//! n, dim, K, T, m = 12, 4, 5, 0.07, 0.5
//! rows = torch.tensor([3, 7, 0, 11])
//! contrast = torch.cat([rows.view(4, 1), (torch.arange(20).view(4, 5) * 7 + 2) % n], 1)
//! fs = pattern((4, 3, 2, 2), 0.37, 0.1).requires_grad_()
//! ft = pattern((4, 5, 4, 4), 0.21, 0.7)
//! Ws, bs = pattern((dim, 3), 0.9, 0.3).requires_grad_(), pattern((dim,), 1.1, 0.2)
//! Wt, bt = pattern((dim, 5), 0.6, 0.4), pattern((dim,), 0.8, 0.5)
//! mem_s, mem_t = pattern((n, dim), 0.3, 0.9), pattern((n, dim), 0.45, 0.25)
//! v_s = F.normalize(fs.mean((2, 3)) @ Ws.t() + bs); v_t = F.normalize(ft.mean((2, 3)) @ Wt.t() + bt)
//! def scores(mem, v):   # ContrastMemory, Z from the first batch, detached
//!     out = torch.exp(torch.bmm(mem[contrast.view(-1)].view(4, K + 1, dim), v.unsqueeze(2)).squeeze(2) / T)
//!     z = (out.mean() * n).detach()
//!     return out / z, z
//! def nce(x, eps=1e-7):  # ContrastLoss
//!     pn = K / n
//!     d1 = torch.log(x[:, 0] / (x[:, 0] + pn + eps)); d0 = torch.log(pn / (x[:, 1:] + pn + eps))
//!     return -(d1.sum() + d0.sum()) / x.shape[0]
//! p_t, z_t = scores(mem_s, v_t); p_s, z_s = scores(mem_t, v_s)
//! contrastive = nce(p_s) + nce(p_t); (0.8 * contrastive).backward()
//! v = pattern((4, 3, 2, 2), 1.3, 0.5)
//! new_s = F.normalize(mem_s[rows] * m + v_s.detach() * (1 - m))
//! new_t = F.normalize(mem_t[rows] * m + v_t.detach() * (1 - m))
//! print(contrastive.item(), (fs.grad * v).sum().item(), fs.grad.norm().item(), Ws.grad.norm().item())
//! print(z_s.item(), z_t.item(), new_s.sum().item(), new_t.sum().item())
//! ```

use kd_core::{CrdConfig, FeatureLoss, LossConfig, NO_LABEL};
use tch::{nn, Device, Kind, Tensor};

/// `sin(arange(n) * a + b)` reshaped, as the Python's `pattern`.
fn pattern(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i as f64 * a + b).sin() as f32).collect();
    Tensor::from_slice(&v).reshape(shape)
}

/// Float32 against PyTorch's float64: `1e-5` of the value plus `1e-5` of `scale`.
fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-5 * (want.abs() + scale.abs())
}

/// CRD of 4 dimensions and 5 negatives over 12 images, with the Python's heads and banks.
fn crd(vs: &nn::VarStore) -> kd_core::Crd {
    let config = CrdConfig {
        feat_dim: 4,
        negatives: 5,
        ..CrdConfig::default()
    };
    let crd = config
        .build("distill", &(vs.root() / "crd"), [3, 5], 12)
        .unwrap();
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, shape, a, b) in [
            ("crd.embed_s.weight", [4i64, 3].as_slice(), 0.9, 0.3),
            ("crd.embed_s.bias", &[4], 1.1, 0.2),
            ("crd.embed_t.weight", &[4, 5], 0.6, 0.4),
            ("crd.embed_t.bias", &[4], 0.8, 0.5),
            ("crd.memory_s", &[12, 4], 0.3, 0.9),
            ("crd.memory_t", &[12, 4], 0.45, 0.25),
        ] {
            vars[name].shallow_clone().copy_(&pattern(shape, a, b));
        }
    });
    crd
}

#[test]
fn crd_matches_the_authors_arithmetic_and_updates_its_banks() {
    let vs = nn::VarStore::new(Device::Cpu);
    let crd = crd(&vs);
    let rows = Tensor::from_slice(&[3i64, 7, 0, 11]);
    let negatives =
        (Tensor::arange(20, (Kind::Int64, Device::Cpu)).view([4, 5]) * 7 + 2).remainder(12);
    let contrast = Tensor::cat(&[rows.view([4, 1]), negatives], 1);
    let fs = pattern(&[4, 3, 2, 2], 0.37, 0.1).set_requires_grad(true);
    let ft = pattern(&[4, 5, 4, 4], 0.21, 0.7);
    let term = crd.contrastive([&fs, &ft], &rows, &contrast);
    (&term * 0.8).backward();
    let (value, dot, norm, head) = (
        38.990304173229966,
        0.2716031373926502,
        2.617266510143565,
        2.0098118727611713,
    );
    let got = term.double_value(&[]);
    assert!(close(got, value, value), "{got} vs PyTorch {value}");
    let v = pattern(&[4, 3, 2, 2], 1.3, 0.5);
    let got_dot = (fs.grad() * v).sum(Kind::Double).double_value(&[]);
    assert!(close(got_dot, dot, norm), "grad.v {got_dot} vs {dot}");
    assert!(close(fs.grad().norm().double_value(&[]), norm, norm));
    let vars = vs.variables();
    let head_grad = vars["crd.embed_s.weight"].grad().norm().double_value(&[]);
    assert!(close(head_grad, head, head), "{head_grad} vs {head}");
    for (name, want) in [
        ("crd.z_s", 8042332446.1716175),
        ("crd.z_t", 64144760130.44833),
    ] {
        let z = vars[name].double_value(&[]);
        assert!((z - want).abs() <= 1e-5 * want, "{name} {z} vs {want}");
    }
    for (name, want) in [
        ("crd.memory_s", 1.2073535933834971),
        ("crd.memory_t", 7.252540486156821),
    ] {
        let updated = vars[name]
            .index_select(0, &rows)
            .sum(Kind::Double)
            .double_value(&[]);
        assert!(close(updated, want, 4.0), "{name}: {updated} vs {want}");
    }
}

#[test]
fn a_validation_batch_gets_the_label_term_and_leaves_the_banks_alone() {
    let vs = nn::VarStore::new(Device::Cpu);
    let crd = crd(&vs);
    let before = vs.variables()["crd.memory_s"].copy();
    let logits = pattern(&[4, 4], 0.5, 0.0);
    let labels = Tensor::from_slice(&[1i64, NO_LABEL, 3, 0]);
    let fs = pattern(&[4, 3, 2, 2], 0.37, 0.1);
    let ft = pattern(&[4, 5, 4, 4], 0.21, 0.7);
    let out = crd.loss_on(&logits, &fs, &ft, &labels, None);
    assert_eq!(out.parts[1].1.double_value(&[]), 0.0);
    assert_eq!(
        out.total.double_value(&[]),
        kd_core::label_term(&logits, &labels).double_value(&[])
    );
    assert!(vs.variables()["crd.memory_s"].equal(&before));
    // A training batch draws its negatives and moves the banks.
    let rows = Tensor::from_slice(&[3i64, 7, 0, 11]);
    let out = crd.loss_on(&logits, &fs, &ft, &labels, Some(&rows));
    assert!(out.parts[1].1.double_value(&[]) > 0.0);
    assert!(!vs.variables()["crd.memory_s"].equal(&before));
    assert!(!crd.capturable());
}

#[test]
fn a_bank_no_larger_than_the_negatives_is_refused() {
    let vs = nn::VarStore::new(Device::Cpu);
    let config: LossConfig = serde_json::from_str(r#"{"loss": "crd", "negatives": 100}"#).unwrap();
    let err = config
        .build_feature("distill", &vs.root(), [3, 5], 100)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("distill.negatives") && err.contains("100 training images"),
        "{err}"
    );
    let err = serde_json::from_str::<LossConfig>(r#"{"loss": "crd", "momentum": 1.5}"#)
        .unwrap()
        .validate("distill")
        .unwrap_err()
        .to_string();
    assert!(err.contains("distill.momentum"), "{err}");
}

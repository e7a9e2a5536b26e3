//! Unlabeled rows (label `-1`, the transfer set of Hinton et al. 2015, section 2) in every
//! logit loss of the zoo: their label term is 0 and each row weighs `1 / b`, so a batch
//! mixing labelled and unlabeled rows has the loss PyTorch computes for the same definition,
//! and equals `l / b` times the labelled rows' loss plus `u / b` times the unlabeled rows'
//! computed apart — except DIST's and MLKD's, whose batch-level terms relate the rows to each
//! other, so that only the PyTorch value holds for them. DKD splits an unlabeled row at the
//! teacher's top class. The Python (PyTorch 2.11, float64):
//!
//! ```python
//! import torch, torch.nn.functional as F
//! torch.set_default_dtype(torch.float64)
//! b, k, T = 6, 5, 2.0
//! i = torch.arange(b).unsqueeze(1).double(); j = torch.arange(k).unsqueeze(0).double()
//! s0 = 3.0 * torch.sin(0.7 * i + 1.3 * j); t = 2.0 * torch.cos(0.5 * i + 0.9 * j)
//! y = torch.tensor([0, -1, 2, 3, -1, 1])
//! m = y >= 0
//! def ce(s, y): return F.cross_entropy(s[y >= 0], y[y >= 0], reduction='sum') / s.shape[0]
//! def kl(s, t): return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean') * T * T
//! def hinton(s, t, y, alpha=0.1): return alpha * ce(s, y) + (1 - alpha) * kl(s, t)
//! def keras(s, t, y, alpha=0.1):   # Keras KLDivergence on clipped probabilities, T^2
//!     p, q = F.softmax(t / T, 1).clamp(1e-7, 1), F.softmax(s / T, 1).clamp(1e-7, 1)
//!     return alpha * ce(s, y) + (1 - alpha) * (p * (p / q).log()).sum(1).mean() * T * T
//! def dkd(s, t, y, ce_weight=1.0, alpha=1.0, beta=8.0, warm=0.5):
//!     ys = torch.where(y >= 0, y, t.argmax(1))
//!     gt = F.one_hot(ys, k).double(); other = 1 - gt
//!     ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
//!     cat = lambda p: torch.stack([(p * gt).sum(1), (p * other).sum(1)], 1)
//!     tckd = F.kl_div(torch.log(cat(ps)), cat(pt), reduction='sum') * T**2 / b
//!     nckd = F.kl_div(F.log_softmax(s / T - 1000.0 * gt, 1), F.softmax(t / T - 1000.0 * gt, 1), reduction='sum') * T**2 / b
//!     return ce_weight * ce(s, y) + warm * (alpha * tckd + beta * nckd)
//! def lskd(s, t, y, ce_weight=0.1, kd_weight=9.0):
//!     z = lambda x: (x - x.mean(-1, keepdim=True)) / (1e-7 + x.std(-1, keepdim=True))
//!     kd = F.kl_div(F.log_softmax(z(s) / T, 1), F.softmax(z(t) / T, 1), reduction='none').sum(1).mean() * T * T
//!     return ce_weight * ce(s, y) + kd_weight * kd
//! def pearson(a, b, eps=1e-8):
//!     a = a - a.mean(1).unsqueeze(1); b = b - b.mean(1).unsqueeze(1)
//!     return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
//! def dist(s, t, y, ce_weight=1.0, beta=2.0, gamma=2.0):
//!     ps, pt = (s / T).softmax(1), (t / T).softmax(1)
//!     return ce_weight * ce(s, y) + beta * T**2 * (1 - pearson(ps, pt).mean()) + gamma * T**2 * (1 - pearson(ps.t(), pt.t()).mean())
//! def kl2(s, t, tau): return F.kl_div(F.log_softmax(s / tau, 1), F.softmax(t / tau, 1), reduction='batchmean') * tau**2
//! def gram(s, t, tau, rows):
//!     ps, pt = F.softmax(s / tau, 1), F.softmax(t / tau, 1)
//!     if rows: return ((pt @ pt.t() - ps @ ps.t()) ** 2).sum() / s.shape[0]
//!     return ((pt.t() @ pt - ps.t() @ ps) ** 2).sum() / s.shape[1]
//! def mlkd(s, t, y):
//!     return ce(s, y) + sum(kl2(s, t, u) + gram(s, t, u, True) + gram(s, t, u, False) for u in [2.0, 3.0, 4.0, 5.0, 6.0])
//! v = torch.cos(i + 2 * j)
//! for name, fn in [('hinton', hinton), ('keras-kd', keras), ('dkd', dkd), ('lskd', lskd),
//!                  ('dist', dist), ('mlkd', mlkd)]:
//!     s = s0.clone().requires_grad_(); out = fn(s, t, y); out.backward()
//!     print(name, repr(float(out)), repr(float((s.grad * v).sum())), repr(float(s.grad.norm())))
//! ```

use kd_core::loss::NO_LABEL;
use kd_core::{
    DistConfig, DistillLoss, DkdConfig, HintonKdConfig, KerasKdConfig, LogitStandardKdConfig,
    MlkdConfig,
};
use tch::{Device, Kind, Tensor};

const B: i64 = 6;
const K: i64 = 5;
const T: f64 = 2.0;
const LABELS: [i64; 6] = [0, NO_LABEL, 2, 3, NO_LABEL, 1];

/// `scale * f(a i + c j)` over `[B, K]`, computed in f64 and stored as f32.
fn pattern(scale: f64, a: f64, c: f64, f: fn(f64) -> f64) -> Tensor {
    let v: Vec<f32> = (0..B * K)
        .map(|n| (scale * f(a * (n / K) as f64 + c * (n % K) as f64)) as f32)
        .collect();
    Tensor::from_slice(&v).reshape([B, K])
}

fn losses() -> Vec<(&'static str, Box<dyn DistillLoss>, [f64; 3])> {
    let dkd = DkdConfig {
        ce_weight: 1.0,
        alpha: 1.0,
        beta: 8.0,
        temperature: T,
        warmup_epochs: 2,
    }
    .build("distill")
    .unwrap();
    dkd.begin_epoch(1); // warm-up factor 0.5, as in the Python
    vec![
        (
            "hinton",
            Box::new(
                HintonKdConfig {
                    alpha: 0.1,
                    temperature: T,
                }
                .build("distill")
                .unwrap(),
            ),
            [0.8476177325579062, -0.4179068130762573, 0.2139893202749048],
        ),
        (
            "keras-kd",
            Box::new(
                KerasKdConfig {
                    alpha: 0.1,
                    temperature: T,
                    temperature_squared: true,
                }
                .build("distill")
                .unwrap(),
            ),
            [0.847617732557906, -0.4179068130762574, 0.21398932027490478],
        ),
        (
            "dkd",
            Box::new(dkd),
            [5.050241499826104, -1.8023905224690038, 0.9012025613204716],
        ),
        (
            "lskd",
            Box::new(
                LogitStandardKdConfig {
                    ce_weight: 0.1,
                    kd_weight: 9.0,
                    temperature: T,
                }
                .build("distill")
                .unwrap(),
            ),
            [1.2827638306872986, -0.7220338659222981, 0.3644758775201611],
        ),
    ]
}

/// The losses with batch-level terms (not a weighted sum of their rows' parts), DIST with
/// `T = 2`, MLKD with its default temperatures, and PyTorch's numbers as in [`losses`].
fn batch_level_losses() -> Vec<(&'static str, Box<dyn DistillLoss>, [f64; 3])> {
    let dist = DistConfig {
        temperature: T,
        ..DistConfig::default()
    };
    vec![
        (
            "dist",
            Box::new(dist.build("distill").unwrap()),
            [6.024898196943507, -2.1311804491802486, 1.2543471016610872],
        ),
        (
            "mlkd",
            Box::new(MlkdConfig::default().build("distill").unwrap()),
            [6.515458522219179, -2.7943252234516462, 1.3952701230423339],
        ),
    ]
}

/// Float32 against PyTorch's float64: `1e-5` of the value plus `1e-5` of `scale`.
fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-5 * (want.abs() + scale.abs())
}

/// The mixed batch's loss of `loss` and the gradient's dot product with the fixed
/// direction, checked against PyTorch's `[value, dot, norm]`; returns the loss.
fn matches_pytorch(name: &str, loss: &dyn DistillLoss, [value, dot, norm]: [f64; 3]) -> f64 {
    let teacher = pattern(2.0, 0.5, 0.9, f64::cos);
    let labels = Tensor::from_slice(&LABELS);
    let student = pattern(3.0, 0.7, 1.3, f64::sin).set_requires_grad(true);
    let out = loss.loss(&student, &teacher, &labels);
    out.total.backward();
    let got = out.total.double_value(&[]);
    assert!(close(got, value, value), "{name}: {got} vs PyTorch {value}");
    let v = (Tensor::arange(B, (Kind::Double, Device::Cpu)).unsqueeze(1)
        + Tensor::arange(K, (Kind::Double, Device::Cpu)).unsqueeze(0) * 2.0)
        .cos();
    let grad = student.grad().to_kind(Kind::Double);
    let got_dot = (&grad * v).sum(Kind::Double).double_value(&[]);
    assert!(
        close(got_dot, dot, norm),
        "{name}: grad.v {got_dot} vs PyTorch {dot}"
    );
    got
}

#[test]
fn a_mixed_batch_matches_pytorch_and_the_weighted_sum_of_its_parts() {
    let student = pattern(3.0, 0.7, 1.3, f64::sin);
    let teacher = pattern(2.0, 0.5, 0.9, f64::cos);
    let labels = Tensor::from_slice(&LABELS);
    let labelled = Tensor::from_slice(&[0i64, 2, 3, 5]);
    let unlabeled = Tensor::from_slice(&[1i64, 4]);
    for (name, loss, expected) in losses() {
        let got = matches_pytorch(name, loss.as_ref(), expected);
        // The same loss on the two kinds of rows apart, weighted by their share.
        let part = |rows: &Tensor| {
            let s = student.index_select(0, rows);
            let t = teacher.index_select(0, rows);
            let y = labels.index_select(0, rows);
            loss.loss(&s, &t, &y).total.double_value(&[])
        };
        let weighted = 4.0 / 6.0 * part(&labelled) + 2.0 / 6.0 * part(&unlabeled);
        assert!(
            close(got, weighted, expected[0]),
            "{name}: mixed {got} vs weighted parts {weighted}"
        );
    }
    for (name, loss, expected) in batch_level_losses() {
        matches_pytorch(name, loss.as_ref(), expected);
    }
}

#[test]
fn an_unlabeled_row_changes_no_label_term() {
    // Every row unlabeled: the label term is exactly 0, so the loss is the teacher's alone.
    let student = pattern(3.0, 0.7, 1.3, f64::sin);
    let teacher = pattern(2.0, 0.5, 0.9, f64::cos);
    let none = Tensor::full([B], NO_LABEL, (Kind::Int64, Device::Cpu));
    for (name, loss, _) in losses() {
        let out = loss.loss(&student, &teacher, &none);
        let (_, hard) = &out.parts[0];
        assert_eq!(hard.double_value(&[]), 0.0, "{name}: label term");
        assert!(
            out.total.double_value(&[]) > 0.0,
            "{name}: the teacher still teaches"
        );
    }
}

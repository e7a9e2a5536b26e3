//! Attention transfer and relational KD against values PyTorch 2.11 computed in float64, on
//! features of mismatched channels (3 against 6) and sizes (4x4 against 8x8) and a batch
//! with two unlabeled rows: loss, terms, and the gradient with respect to the student's
//! feature (its dot product with a fixed direction, and its norm). The Python:
//!
//! ```python
//! import torch, torch.nn.functional as F
//! torch.set_default_dtype(torch.float64)
//! def pattern(shape, a, b):
//!     n = 1
//!     for d in shape: n *= d
//!     return torch.sin(torch.arange(n, dtype=torch.float64) * a + b).reshape(shape)
//! y = torch.tensor([1, -1, 3, 0, -1])
//! def ce(s, y): return F.cross_entropy(s[y >= 0], y[y >= 0], reduction='sum') / s.shape[0]
//! def at_map(f, p=2.0): return F.normalize(f.abs().pow(p).mean(1).reshape(f.shape[0], -1))
//! def at(fs, ft, s):   # mdistiller AT with kd's pooling of the teacher's map to the student's size
//!     ft = F.adaptive_avg_pool2d(ft, fs.shape[2:])
//!     a = (at_map(fs) - at_map(ft)).pow(2).mean()
//!     c = ce(s, y)
//!     return 1.0 * c + 1000.0 * a, c, a
//! def pdist(e, eps=1e-12):   # mdistiller's _pdist, squared=False
//!     sq = e.pow(2).sum(1)
//!     res = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt().clone()
//!     res[range(len(e)), range(len(e))] = 0
//!     return res
//! def angles(e):
//!     d = e.unsqueeze(0) - e.unsqueeze(1)
//!     n = F.normalize(d, p=2, dim=2)
//!     return torch.bmm(n, n.transpose(1, 2)).view(-1)
//! def rkd(fs, ft, s):   # mdistiller's rkd_loss on the pooled features
//!     es, et = fs.mean((2, 3)), ft.mean((2, 3))
//!     with torch.no_grad():
//!         td = pdist(et); td = td / td[td > 0].mean(); ta = angles(et)
//!     d = pdist(es); d = d / d[d > 0].mean()
//!     ld = F.smooth_l1_loss(d, td); la = F.smooth_l1_loss(angles(es), ta)
//!     c = ce(s, y)
//!     return 1.0 * c + 25.0 * ld + 50.0 * la, c, ld, la
//! for name, fn in [('at', at), ('rkd', rkd)]:
//!     fs = pattern((5, 3, 4, 4), 0.37, 0.1).requires_grad_()
//!     ft = pattern((5, 6, 8, 8), 0.21, 0.7)
//!     s = pattern((5, 4), 0.5, 0.0).requires_grad_()
//!     out = fn(fs, ft, s); out[0].backward()
//!     v = pattern((5, 3, 4, 4), 1.3, 0.5)
//!     print(name, [x.item() for x in out], (fs.grad * v).sum().item(), fs.grad.norm().item())
//! ```
//!
//! SimKD's loss on the projector's output (6 channels, as the teacher's) with the paper's
//! weights (feature 1, CE 0) and with others:
//!
//! ```python
//! for ce_w, f_w in [(0.0, 1.0), (0.5, 2.0)]:
//!     p = pattern((5, 6, 4, 4), 0.37, 0.1).requires_grad_()
//!     ft = pattern((5, 6, 8, 8), 0.21, 0.7)
//!     s = pattern((5, 4), 0.5, 0.0).requires_grad_()
//!     f = F.mse_loss(p, F.adaptive_avg_pool2d(ft, (4, 4))); c = ce(s, y)
//!     total = f_w * f + ce_w * c
//!     total.backward()
//!     v = pattern((5, 6, 4, 4), 1.3, 0.5)
//!     print(ce_w, f_w, [total.item(), c.item(), f.item()], (p.grad * v).sum().item(), p.grad.norm().item())
//! ```

use kd_core::{FeatureLoss, LossConfig, NO_LABEL};
use tch::{Device, Kind, Tensor};

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

/// Runs `loss` on the Python's features and compares with `(terms, dot, norm)`.
fn check(name: &str, loss: &dyn FeatureLoss, (expected, dot, norm): (&[f64], f64, f64)) {
    check_with(name, loss, 3, (expected, dot, norm));
}

/// [`check`] with a student feature of `channels` channels.
fn check_with(
    name: &str,
    loss: &dyn FeatureLoss,
    channels: i64,
    (expected, dot, norm): (&[f64], f64, f64),
) {
    let fs = pattern(&[5, channels, 4, 4], 0.37, 0.1).set_requires_grad(true);
    let ft = pattern(&[5, 6, 8, 8], 0.21, 0.7);
    let logits = pattern(&[5, 4], 0.5, 0.0).set_requires_grad(true);
    let labels = Tensor::from_slice(&[1i64, NO_LABEL, 3, 0, NO_LABEL]);
    let out = loss.loss(&logits, &fs, &ft, &labels);
    out.total.backward();
    let mut got = vec![out.total.double_value(&[])];
    got.extend(out.parts.iter().map(|(_, p)| p.double_value(&[])));
    assert_eq!(got.len(), expected.len(), "{name}: terms");
    let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(expected) {
        assert!(
            close(*g, *w, scale),
            "{name}: {got:?} vs PyTorch {expected:?}"
        );
    }
    let grad = fs.grad().to_kind(Kind::Double);
    let v = pattern(&[5, channels, 4, 4], 1.3, 0.5).to_kind(Kind::Double);
    let got_dot = (&grad * v).sum(Kind::Double).double_value(&[]);
    assert!(
        close(got_dot, dot, norm),
        "{name}: grad.v {got_dot} vs PyTorch {dot}"
    );
    let got_norm = grad.norm().double_value(&[]);
    assert!(
        close(got_norm, norm, norm),
        "{name}: |grad| {got_norm} vs PyTorch {norm}"
    );
}

/// The named feature loss with its defaults, built for 3 and 6 channels.
fn build(name: &str) -> Box<dyn FeatureLoss> {
    let config: LossConfig = serde_json::from_str(&format!(r#"{{"loss": "{name}"}}"#)).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    config
        .build_feature("distill", &vs.root(), [3, 6], 100)
        .unwrap()
}

#[test]
fn attention_transfer_matches_pytorch() {
    let expected = [18.975948174044532, 0.9904606872745401, 0.01798548748676999];
    check(
        "at",
        build("at").as_ref(),
        (&expected, -3.6791535828296094, 6.947957702758443),
    );
}

#[test]
fn rkd_matches_pytorch_and_is_not_captured_in_a_cuda_graph() {
    let expected = [
        5.48328517638876,
        0.9904606872745401,
        0.04106870084944525,
        0.06932213935756176,
    ];
    let rkd = build("rkd");
    check(
        "rkd",
        rkd.as_ref(),
        (&expected, 4.468952055443328, 35.68984394539031),
    );
    assert!(
        !rkd.capturable(),
        "its normalizing mean has a data-dependent shape"
    );
    assert!(build("at").capturable());
}

#[test]
fn simkd_matches_pytorch_with_the_papers_weights_and_others() {
    let parse = |json: &str| serde_json::from_str::<LossConfig>(json).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let build = |config: LossConfig| config.build_feature("distill", &vs.root(), [6, 6], 100);
    let paper = build(parse(r#"{"loss": "simkd"}"#)).unwrap();
    assert_eq!(paper.layers(), ["projector", "features.35"]);
    let terms = [0.7174121654305615, 0.9904606872745401, 0.7174121654305615];
    let grad = (-0.001161737876378386, 0.07732033828121386);
    check_with("simkd", paper.as_ref(), 6, (&terms, grad.0, grad.1));
    let weighted = r#"{"loss": "simkd", "ce_weight": 0.5, "feature_weight": 2.0}"#;
    let weighted = build(parse(weighted)).unwrap();
    let terms = [1.930054674498393, 0.9904606872745401, 0.7174121654305615];
    let grad = (-0.002323475752756772, 0.15464067656242772);
    check_with(
        "simkd weighted",
        weighted.as_ref(),
        6,
        (&terms, grad.0, grad.1),
    );
    let err = build(parse(r#"{"loss": "simkd", "factor": 0}"#)).unwrap_err();
    assert!(err.to_string().contains("distill.factor"), "{err}");
}

#[test]
fn feature_losses_name_their_layers_and_refuse_bad_values() {
    let parse = |json: &str| serde_json::from_str::<LossConfig>(json).unwrap();
    let at =
        parse(r#"{"loss": "at", "student_layer": "features.3", "teacher_layer": "features.5"}"#);
    assert!(at.is_feature());
    assert_eq!(at.feature_layers(), Some(["features.3", "features.5"]));
    assert!(!parse(r#"{"loss": "dist"}"#).is_feature());
    let message = parse(r#"{"loss": "at", "p": 0.0}"#)
        .validate("distill")
        .unwrap_err();
    assert!(message.to_string().contains("distill.p"), "{message}");
    let message = parse(r#"{"loss": "rkd", "student_layer": ""}"#)
        .validate("distill")
        .unwrap_err();
    assert!(
        message.to_string().contains("distill.student_layer"),
        "{message}"
    );
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let message = parse(r#"{"loss": "hinton"}"#)
        .build_feature("distill", &vs.root(), [3, 6], 100)
        .unwrap_err();
    assert!(message.to_string().contains("distill.loss"), "{message}");
    let message = parse(r#"{"loss": "rkd"}"#).build("distill").unwrap_err();
    assert!(message.to_string().contains("build_feature"), "{message}");
}

#[test]
fn rkd_relates_a_batch_larger_than_a_block_block_by_block() {
    // 300 rows: blocks of 256 and 44, each term their size-weighted mean.
    let rkd = build("rkd");
    let rows = 300;
    let fs = pattern(&[rows, 3, 2, 2], 0.37, 0.1);
    let ft = pattern(&[rows, 6, 2, 2], 0.21, 0.7);
    let logits = pattern(&[rows, 4], 0.5, 0.0);
    let labels = Tensor::zeros([rows], (Kind::Int64, Device::Cpu));
    let terms = |start: i64, n: i64| {
        let part = |t: &Tensor| t.narrow(0, start, n);
        let out = rkd.loss(&part(&logits), &part(&fs), &part(&ft), &part(&labels));
        [1, 2].map(|i| out.parts[i].1.double_value(&[]))
    };
    let whole = terms(0, rows);
    let (first, rest) = (terms(0, 256), terms(256, 44));
    for i in 0..2 {
        let blocks = (first[i] * 256.0 + rest[i] * 44.0) / 300.0;
        assert!(
            close(whole[i], blocks, blocks),
            "{whole:?} vs blocks {first:?} {rest:?}"
        );
    }
    assert_eq!(kd_core::loss::rkd::RELATION_BLOCK, 256);
}

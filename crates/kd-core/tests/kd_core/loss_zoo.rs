//! Hinton KD, DKD and logit-standardized KD against values PyTorch 2.11 computed (in
//! float64) for the same inputs: loss, terms, and the gradient with respect to the student
//! logits (its dot product with a fixed direction, and its norm). The Python:
//!
//! ```python
//! import torch, torch.nn.functional as F
//! torch.set_default_dtype(torch.float64)
//! def logits(b, k, kind, scale):
//!     i = torch.arange(b).unsqueeze(1).double(); j = torch.arange(k).unsqueeze(0).double()
//!     if kind == 'sin': return scale * torch.sin(0.7 * i + 1.3 * j)
//!     if kind == 'cos': return scale * torch.cos(0.5 * i + 0.9 * j)
//!     if kind == 'sign': return scale * torch.sign(torch.sin(0.7 * i + 1.3 * j) + 0.1)
//!     if kind == 'tie': return torch.zeros(b, k) + scale
//! CASES = [(4, 5, ('sin', 3.0), ('cos', 2.0), 1.0), (3, 10, ('sign', 50.0), ('sign', -50.0), 1.0),
//!          (3, 10, ('sign', 50.0), ('cos', 50.0), 4.0), (2, 7, ('tie', 0.0), ('tie', 1.0), 2.0),
//!          (5, 100, ('sin', 5.0), ('cos', 8.0), 0.5)]
//! def hinton(s, t, y, T, alpha):
//!     ce = F.cross_entropy(s, y)
//!     kd = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean') * T * T
//!     return alpha * ce + (1 - alpha) * kd, ce, kd
//! def dkd(s, t, y, T, ce_weight, alpha, beta, warm):   # mdistiller's dkd_loss
//!     gt = F.one_hot(y, s.shape[1]).double(); other = 1 - gt
//!     ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
//!     cat = lambda p: torch.stack([(p * gt).sum(1), (p * other).sum(1)], 1)
//!     ps2, pt2 = cat(ps), cat(pt)
//!     tckd = F.kl_div(torch.log(ps2), pt2, reduction='sum') * T**2 / s.shape[0]
//!     nckd = F.kl_div(F.log_softmax(s / T - 1000.0 * gt, 1), F.softmax(t / T - 1000.0 * gt, 1),
//!                     reduction='sum') * T**2 / s.shape[0]
//!     ce = F.cross_entropy(s, y)
//!     return ce_weight * ce + warm * (alpha * tckd + beta * nckd), ce, tckd, nckd
//! def lskd(s, t, y, T, ce_weight, kd_weight):           # Sun et al. 2024, the authors' code
//!     z = lambda x: (x - x.mean(-1, keepdim=True)) / (1e-7 + x.std(-1, keepdim=True))
//!     kd = F.kl_div(F.log_softmax(z(s) / T, 1), F.softmax(z(t) / T, 1), reduction='none').sum(1).mean() * T * T
//!     ce = F.cross_entropy(s, y)
//!     return ce_weight * ce + kd_weight * kd, ce, kd
//! def run(name, fn, *args):
//!     for n, (b, k, sk, tk, T) in enumerate(CASES):
//!         s = logits(b, k, *sk).requires_grad_(); t = logits(b, k, *tk); y = torch.arange(b) % k
//!         out = fn(s, t, y, T, *args); out[0].backward()
//!         i = torch.arange(b).unsqueeze(1).double(); j = torch.arange(k).unsqueeze(0).double()
//!         v = torch.cos(i + 2 * j)
//!         print(name, n, [float(x) for x in out], float((s.grad * v).sum()), float(s.grad.norm()))
//! run('hinton', hinton, 0.1); run('dkd', dkd, 1.0, 1.0, 8.0, 0.5); run('lskd', lskd, 0.1, 9.0)
//! ```

use kd_core::{
    DistillLoss, DkdConfig, FeatureLoss, HintonKdConfig, LogitStandardKdConfig, LossConfig,
};
use tch::{Device, Kind, Tensor};

/// A logit pattern: `(kind, scale)` of the Python's `logits`.
type Pattern = (&'static str, f64);

/// `(b, k, student, teacher, T)` as in the Python.
const CASES: [(i64, i64, Pattern, Pattern, f64); 5] = [
    (4, 5, ("sin", 3.0), ("cos", 2.0), 1.0),
    (3, 10, ("sign", 50.0), ("sign", -50.0), 1.0),
    (3, 10, ("sign", 50.0), ("cos", 50.0), 4.0),
    (2, 7, ("tie", 0.0), ("tie", 1.0), 2.0),
    (5, 100, ("sin", 5.0), ("cos", 8.0), 0.5),
];

/// PyTorch's output per case: `(loss and terms, grad . v, |grad|)`.
pub(crate) type Expected<const N: usize> = [([f64; N], f64, f64); 5];

const HINTON: Expected<3> = [
    (
        [0.8405642343110503, 3.309900945872217, 0.5661934885820318],
        -0.44634269624525846,
        0.25920647288635634,
    ),
    (
        [93.620633309085, 34.98993776652534, 100.13515503603605],
        -0.10035198816601751,
        0.35197853469904794,
    ),
    (
        [47.36927547643224, 34.98993776652534, 48.74475744419968],
        -1.3284846429500128,
        1.3904041893577925,
    ),
    (
        [0.19459101490553132, 1.9459101490553132, 0.0],
        0.009058758342271104,
        0.06546536707079771,
    ),
    (
        [2.802846326387268, 7.051244190036567, 2.3308021193151234],
        -0.028142269116327237,
        0.07996728901434155,
    ),
];

const DKD: Expected<4> = [
    (
        [
            3.949078919374901,
            3.309900945872217,
            0.4902525812493783,
            0.09851292071949877,
        ],
        -0.9511657489778864,
        0.7062730816010754,
    ),
    (
        [
            439.51339722693314,
            34.98993776652534,
            8.451869450644645,
            100.07438118377138,
        ],
        -0.09308579852051874,
        1.8330018639743204,
    ),
    (
        [
            236.61529281975865,
            34.98993776652534,
            3.0472305652190657,
            50.02543494265594,
        ],
        -3.3811609999819985,
        7.030336968324013,
    ),
    (
        [1.9459101490553132, 1.9459101490553132, 0.0, 0.0],
        0.09058758342271085,
        0.6546536707079772,
    ),
    (
        [
            16.38983227832129,
            7.051244190036567,
            0.03901665859144054,
            2.3297699397472504,
        ],
        -0.20582260050250425,
        0.55145204645333,
    ),
];

const LSKD: Expected<3> = [
    (
        [1.6021475878402536, 3.309900945872217, 0.1412397214725591],
        -0.8645075021504692,
        0.5357839409107618,
    ),
    (
        [16.679947254544636, 34.98993776652534, 1.4645503864324558],
        -0.030979182599778672,
        0.05527707986001711,
    ),
    (
        [7.239507346664015, 34.98993776652534, 0.4156126188901646],
        -0.026065984585983942,
        0.05917566624538006,
    ),
    (
        [0.19459101490553132, 1.9459101490553132, 0.0],
        0.009058758342271076,
        0.06546536707079771,
    ),
    (
        [5.528186253259852, 7.051244190036567, 0.5358957593617995],
        -0.03065272639592466,
        0.09623503377095546,
    ),
];

/// The Python's `logits(b, k, kind, scale)`, computed in f64 and stored as f32.
fn logits(b: i64, k: i64, (kind, scale): Pattern) -> Tensor {
    let mut v = Vec::new();
    for i in 0..b {
        for j in 0..k {
            let (i, j) = (i as f64, j as f64);
            v.push(match kind {
                "sin" => scale * (0.7 * i + 1.3 * j).sin(),
                "cos" => scale * (0.5 * i + 0.9 * j).cos(),
                "sign" => scale * ((0.7 * i + 1.3 * j).sin() + 0.1).signum(),
                _ => scale,
            } as f32);
        }
    }
    Tensor::from_slice(&v).reshape([b, k])
}

/// Within what a float32 computation can promise on any CPU: `1e-5` of the value plus
/// `1e-5` of `scale` (the case's largest term for the terms, the gradient's norm for a
/// projection that can cancel). The absolute part matters where PyTorch's float64 value is
/// an exact zero: float32 log-sum-exps of equal logits leave about 5e-7 on some vector
/// kernels (AVX-512) and none on others.
fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-5 * (want.abs() + scale.abs())
}

/// Runs every case through the loss `make(T)` builds and compares with PyTorch's numbers.
pub(crate) fn check<const N: usize>(
    name: &str,
    make: impl Fn(f64) -> Box<dyn DistillLoss>,
    expected: &Expected<N>,
) {
    for (n, ((b, k, s, t, temp), (values, dot, norm))) in CASES.iter().zip(expected).enumerate() {
        let loss = make(*temp);
        let student = logits(*b, *k, *s).set_requires_grad(true);
        let teacher = logits(*b, *k, *t);
        let labels = Tensor::arange(*b, (Kind::Int64, Device::Cpu)).remainder(*k);
        let out = loss.loss(&student, &teacher, &labels);
        out.total.backward();
        let mut got = vec![out.total.double_value(&[])];
        got.extend(out.parts.iter().map(|(_, p)| p.double_value(&[])));
        assert_eq!(got.len(), N, "{name} case {n}: terms");
        let scale = values.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(values) {
            assert!(
                close(*g, *w, scale),
                "{name} case {n}: {got:?} vs PyTorch {values:?}"
            );
        }
        let grad = student.grad().to_kind(Kind::Double);
        assert_eq!(
            grad.isfinite().all().int64_value(&[]),
            1,
            "{name} case {n}: non-finite gradient"
        );
        let v = (Tensor::arange(*b, (Kind::Double, Device::Cpu)).unsqueeze(1)
            + Tensor::arange(*k, (Kind::Double, Device::Cpu)).unsqueeze(0) * 2.0)
            .cos();
        let got_dot = (&grad * v).sum(Kind::Double).double_value(&[]);
        let got_norm = grad.norm().double_value(&[]);
        assert!(
            close(got_dot, *dot, *norm),
            "{name} case {n}: grad.v {got_dot} vs PyTorch {dot}"
        );
        assert!(
            close(got_norm, *norm, *norm),
            "{name} case {n}: |grad| {got_norm} vs PyTorch {norm}"
        );
    }
}

#[test]
fn hinton_matches_pytorch() {
    let make = |t| -> Box<dyn DistillLoss> {
        Box::new(
            HintonKdConfig {
                alpha: 0.1,
                temperature: t,
            }
            .build("distill")
            .unwrap(),
        )
    };
    check("hinton", make, &HINTON);
}

#[test]
fn dkd_matches_pytorch_at_half_warmup() {
    let make = |t| -> Box<dyn DistillLoss> {
        let loss = DkdConfig {
            ce_weight: 1.0,
            alpha: 1.0,
            beta: 8.0,
            temperature: t,
            warmup_epochs: 2,
        }
        .build("distill")
        .unwrap();
        loss.begin_epoch(1); // warm-up factor 1/2, the Python's `warm = 0.5`
        Box::new(loss)
    };
    check("dkd", make, &DKD);
}

#[test]
fn lskd_matches_pytorch() {
    let make = |t| -> Box<dyn DistillLoss> {
        Box::new(
            LogitStandardKdConfig {
                ce_weight: 0.1,
                kd_weight: 9.0,
                temperature: t,
            }
            .build("distill")
            .unwrap(),
        )
    };
    check("lskd", make, &LSKD);
}

#[test]
fn no_loss_is_nan_or_inf_on_extreme_finite_logits() {
    // Logits of +-1e4 at T = 0.25: every softmax saturates to exact 0s and 1s in f32.
    let mut student = (logits(4, 6, ("sign", 1e4)) * -1.0).set_requires_grad(true);
    let teacher = logits(4, 6, ("sign", 1e4));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
    let names = ["keras-kd", "hinton", "dkd", "lskd", "dist"];
    let mut configs: Vec<String> = names
        .iter()
        .map(|name| format!(r#"{{"loss": "{name}", "temperature": 0.25}}"#))
        .collect();
    configs.push(r#"{"loss": "mlkd", "temperatures": [0.25]}"#.into());
    configs.push(r#"{"loss": "mlkd", "temperatures": [0.25], "standardize": true}"#.into());
    for name in configs {
        let config: LossConfig = serde_json::from_str(&name).unwrap();
        let loss = config.build("distill").unwrap();
        student.zero_grad();
        let out = loss.loss(&student, &teacher, &labels);
        out.total.backward();
        assert!(
            out.total.double_value(&[]).is_finite(),
            "{name}: {:?}",
            out.total
        );
        let finite = student.grad().isfinite().all().int64_value(&[]);
        assert_eq!(finite, 1, "{name}: non-finite gradient");
    }
}

#[test]
fn losses_are_chosen_by_name_and_unknown_keys_are_named() {
    let dkd: LossConfig = serde_json::from_str(r#"{"loss": "dkd", "beta": 2.0}"#).unwrap();
    assert_eq!(
        dkd,
        LossConfig::Dkd(DkdConfig {
            beta: 2.0,
            ..Default::default()
        })
    );
    let default: LossConfig = serde_json::from_str(r#"{"alpha": 0.5}"#).unwrap();
    assert_eq!(default.name(), "keras-kd");
    let err = serde_json::from_str::<LossConfig>(r#"{"loss": "hinton", "beta": 2.0}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `beta`"), "{err}");
    let err = serde_json::from_str::<LossConfig>(r#"{"loss": "no-such-loss"}"#).unwrap_err();
    assert!(
        err.to_string().contains("dkd") && err.to_string().contains("no-such-loss"),
        "{err}"
    );
    let err = LossConfig::Hinton(HintonKdConfig {
        alpha: 2.0,
        temperature: 4.0,
    })
    .build("distill")
    .unwrap_err();
    assert!(err.to_string().contains("distill.alpha"), "{err}");
}

/// `sin(arange(n) * a + b)` reshaped, as the FitNets Python's `pattern`.
fn pattern(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i as f64 * a + b).sin() as f32).collect();
    Tensor::from_slice(&v).reshape(shape)
}

#[test]
fn fitnets_hint_matches_pytorch() {
    // PyTorch 2.11 (float64):
    //   def pattern(shape, a, b):
    //       n = 1
    //       for d in shape: n *= d
    //       return torch.sin(torch.arange(n, dtype=torch.float64) * a + b).reshape(shape)
    //   fs = pattern((2, 3, 4, 4), 0.37, 0.1).requires_grad_()   # student feature
    //   ft = pattern((2, 5, 8, 8), 0.21, 0.7)                      # teacher feature
    //   w = pattern((5, 3, 1, 1), 0.9, 0.3); bias = pattern((5,), 1.1, 0.2)
    //   s_logits = pattern((2, 4), 0.5, 0.0).requires_grad_(); y = torch.tensor([1, 3])
    //   hint = F.mse_loss(F.conv2d(fs, w, bias), F.adaptive_avg_pool2d(ft, (4, 4)))
    //   ce = F.cross_entropy(s_logits, y)
    //   total = 1.0 * ce + 100.0 * hint; total.backward()
    //   v = pattern((2, 3, 4, 4), 1.3, 0.5)
    //   print(total.item(), ce.item(), hint.item(), (fs.grad * v).sum().item(), fs.grad.norm().item())
    let expected = [160.3333852963098, 1.8616412663591408, 1.5847174402995068];
    let (dot, norm) = (6.1855244071600355, 27.98569014681405);

    let vs = tch::nn::VarStore::new(Device::Cpu);
    let hint = kd_core::FitNetsConfig::default()
        .build("distill", &(vs.root() / "hint"), 3, 5)
        .unwrap();
    tch::no_grad(|| {
        let vars = vs.variables();
        vars["hint.regressor.weight"]
            .shallow_clone()
            .copy_(&pattern(&[5, 3, 1, 1], 0.9, 0.3));
        vars["hint.regressor.bias"]
            .shallow_clone()
            .copy_(&pattern(&[5], 1.1, 0.2));
    });
    let fs = pattern(&[2, 3, 4, 4], 0.37, 0.1).set_requires_grad(true);
    let ft = pattern(&[2, 5, 8, 8], 0.21, 0.7);
    let logits = pattern(&[2, 4], 0.5, 0.0).set_requires_grad(true);
    let out = hint.loss(&logits, &fs, &ft, &Tensor::from_slice(&[1i64, 3]));
    out.total.backward();
    let got = [
        out.total.double_value(&[]),
        out.parts[0].1.double_value(&[]),
        out.parts[1].1.double_value(&[]),
    ];
    let scale = expected
        .iter()
        .fold(1.0f64, |m: f64, v: &f64| m.max(v.abs()));
    for (g, w) in got.iter().zip(expected) {
        assert!(close(*g, w, scale), "{got:?} vs PyTorch {expected:?}");
    }
    let grad = fs.grad().to_kind(Kind::Double);
    let v = pattern(&[2, 3, 4, 4], 1.3, 0.5).to_kind(Kind::Double);
    let got_dot = (&grad * v).sum(Kind::Double).double_value(&[]);
    assert!(
        close(got_dot, dot, norm),
        "grad.v {got_dot} vs PyTorch {dot}"
    );
    assert!(close(grad.norm().double_value(&[]), norm, norm));
}

//! The seed's distillation loss against values PyTorch 2.11 printed for the same inputs,
//! with Keras semantics written out in PyTorch:
//!
//! ```python
//! import torch, torch.nn.functional as F
//! def keras_kd(s, t, y, alpha, T, t2=False):
//!     ce = F.cross_entropy(s, y)
//!     p = F.softmax(t / T, 1).clamp(1e-7, 1); q = F.softmax(s / T, 1).clamp(1e-7, 1)
//!     kl = (p * (p / q).log()).sum(1).mean()
//!     if t2: kl = kl * T * T
//!     return alpha * ce + (1 - alpha) * kl, ce, kl
//! s = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 0.0, 0.0], [50.0, -50.0, 10.0, 0.0]], requires_grad=True)
//! t = torch.tensor([[2.0, -1.0, 0.0, 4.0], [1.0, 2.0, 3.0, 4.0], [-50.0, 50.0, 0.0, 0.0]])
//! y = torch.tensor([3, 1, 0])
//! for alpha, T, t2 in [(0.7, 1.0, False), (0.1, 4.0, True), (0.5, 0.5, False)]:
//!     s.grad = None
//!     tot, ce, kl = keras_kd(s, t, y, alpha, T, t2)
//!     tot.backward()
//!     print(alpha, T, t2, repr(tot.item()), repr(ce.item()), repr(kl.item()))
//!     print([round(v, 8) for v in s.grad.flatten().tolist()])
//! ```
//!
//! The third row has logits of ±50: both softmaxes saturate, the 1e-7 clip cuts the
//! gradient of the KL term there, exactly as in Keras.

use kd_core::{DistillLoss, KerasKdConfig};
use tch::{Kind, Tensor};

struct Case {
    alpha: f64,
    temperature: f64,
    t_squared: bool,
    total: f64,
    ce: f64,
    kl: f64,
    grad: [f64; 12],
}

const CASES: [Case; 3] = [
    Case {
        alpha: 0.7,
        temperature: 1.0,
        t_squared: false,
        total: 2.0293285846710205,
        ce: 0.5295159220695496,
        kl: 5.528891086578369,
        grad: [
            0.02518832,
            0.00125405,
            0.020773,
            -0.04721539,
            0.08012748,
            -0.15871443,
            0.05964505,
            0.01894191,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
    },
    Case {
        alpha: 0.1,
        temperature: 4.0,
        t_squared: true,
        total: 77.65172576904297,
        ce: 0.5295159220695496,
        kl: 86.22086334228516,
        grad: [
            -0.01850487,
            -0.01029833,
            0.07149201,
            -0.04268881,
            0.10997791,
            0.02030659,
            -0.01869946,
            -0.11158507,
            8.94e-06,
            0.0,
            -4.47e-06,
            -4.47e-06,
        ],
    },
    Case {
        alpha: 0.5,
        temperature: 0.5,
        t_squared: false,
        total: 3.107130765914917,
        ce: 0.5295159220695496,
        kl: 5.684745788574219,
        grad: [
            0.01838819,
            0.00091727,
            0.01325693,
            -0.03256241,
            0.12428533,
            -0.0469474,
            0.08598036,
            -0.16331828,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
    },
];

fn inputs() -> (Tensor, Tensor, Tensor) {
    let s = Tensor::from_slice(&[
        1.0f32, -2.0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0, 50.0, -50.0, 10.0, 0.0,
    ])
    .view([3, 4])
    .set_requires_grad(true);
    let t = Tensor::from_slice(&[
        2.0f32, -1.0, 0.0, 4.0, 1.0, 2.0, 3.0, 4.0, -50.0, 50.0, 0.0, 0.0,
    ])
    .view([3, 4]);
    let y = Tensor::from_slice(&[3i64, 1, 0]);
    (s, t, y)
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-5 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, PyTorch printed {want}"
    );
}

#[test]
fn values_and_gradients_match_pytorch() {
    for case in &CASES {
        let loss = KerasKdConfig {
            alpha: case.alpha,
            temperature: case.temperature,
            temperature_squared: case.t_squared,
        }
        .build("distill")
        .unwrap();
        let (s, t, y) = inputs();
        let out = loss.loss(&s, &t, &y);
        let what = format!("alpha {} T {}", case.alpha, case.temperature);
        close(
            out.total.double_value(&[]),
            case.total,
            &format!("{what} total"),
        );
        let part = |name: &str| {
            out.parts
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no part {name}"))
                .1
                .double_value(&[])
        };
        close(part("student_loss"), case.ce, &format!("{what} CE"));
        close(part("distillation_loss"), case.kl, &format!("{what} KL"));
        out.total.backward();
        let grad: Vec<f64> = Vec::try_from(s.grad().to_kind(Kind::Double).flatten(0, -1)).unwrap();
        for (i, (g, want)) in grad.iter().zip(case.grad).enumerate() {
            assert!(
                (g - want).abs() <= 1e-6,
                "{what} grad[{i}]: got {g}, PyTorch printed {want}"
            );
        }
    }
}

#[test]
fn out_of_range_hyperparameters_name_their_key() {
    for (cfg, key) in [
        (
            KerasKdConfig {
                alpha: 1.5,
                ..Default::default()
            },
            "distill.alpha",
        ),
        (
            KerasKdConfig {
                temperature: 0.0,
                ..Default::default()
            },
            "distill.temperature",
        ),
        (
            KerasKdConfig {
                temperature: f64::NAN,
                ..Default::default()
            },
            "distill.temperature",
        ),
    ] {
        let err = cfg.build("distill").unwrap_err().to_string();
        assert!(err.starts_with(key), "{err}");
    }
}

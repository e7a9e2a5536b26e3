//! DIST and MLKD (plain and logit-standardized) against values PyTorch 2.11 computed in
//! float64 from the papers' equations, on the cases and with the checks of
//! [`crate::loss_zoo`] (loss, terms, and the gradient with respect to the student logits).
//! The Python extends `loss_zoo`'s (same `logits`, `CASES` and `run`):
//!
//! ```python
//! def pearson(a, b, eps=1e-8):   # hunto/DIST_KD losses/dist_kd.py
//!     a = a - a.mean(1).unsqueeze(1); b = b - b.mean(1).unsqueeze(1)
//!     return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
//! def dist(s, t, y, T, ce_weight, beta, gamma):
//!     ps, pt = (s / T).softmax(1), (t / T).softmax(1)
//!     inter = T**2 * (1 - pearson(ps, pt).mean())
//!     intra = T**2 * (1 - pearson(ps.t(), pt.t()).mean())
//!     ce = F.cross_entropy(s, y)
//!     return ce_weight * ce + beta * inter + gamma * intra, ce, inter, intra
//! def kl(s, t, T, stand=False):
//!     z = (lambda x: (x - x.mean(-1, keepdim=True)) / (1e-7 + x.std(-1, keepdim=True))) if stand else (lambda x: x)
//!     return F.kl_div(F.log_softmax(z(s) / T, 1), F.softmax(z(t) / T, 1), reduction='none').sum(1).mean() * T**2
//! def gram(s, t, T, rows):   # Jin et al.'s bc_loss (rows) and cc_loss (columns)
//!     ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
//!     if rows: return ((pt @ pt.t() - ps @ ps.t()) ** 2).sum() / s.shape[0]
//!     return ((pt.t() @ pt - ps.t() @ ps) ** 2).sum() / s.shape[1]
//! def mlkd(s, t, y, T, ce_weight, kd_weight, stand):   # the case's T unused
//!     temps = [2.0, 3.0, 4.0, 5.0, 6.0]
//!     inst = sum(kl(s, t, tau, stand) for tau in temps)
//!     batch = sum(gram(s, t, tau, True) for tau in temps)
//!     cls = sum(gram(s, t, tau, False) for tau in temps)
//!     ce = F.cross_entropy(s, y)
//!     return ce_weight * ce + kd_weight * (inst + batch + cls), ce, inst, batch, cls
//! run('dist', dist, 1.0, 2.0, 2.0); run('mlkd', mlkd, 1.0, 1.0, False)
//! run('mlkd-ls', mlkd, 0.5, 2.0, True)
//! ```

use kd_core::{DistConfig, DistillLoss, LossConfig, MlkdConfig};

use crate::loss_zoo::{check, Expected};

const DIST: Expected<4> = [
    (
        [
            4.643237471032497,
            3.309900945872217,
            0.38671723478709685,
            0.27995102779304315,
        ],
        -1.20984160640857,
        0.7674432083311458,
    ),
    (
        [
            41.74586620397251,
            34.98993776652534,
            1.99999990000001,
            1.377964318723576,
        ],
        -0.30979188739824937,
        0.5527708138988658,
    ),
    (
        [
            83.19362931059308,
            34.98993776652534,
            9.933588867605085,
            14.168256904428791,
        ],
        -7.016188437050953,
        5.543551891702814,
    ),
    (
        [17.945910149055315, 1.9459101490553132, 4.0, 4.0],
        0.09058758342271081,
        0.6546536707079772,
    ),
    (
        [
            8.006176548705225,
            7.051244190036567,
            0.24186684277613868,
            0.23559933655819024,
        ],
        -0.1916490040052025,
        0.44826628075135627,
    ),
];

const MLKD: Expected<5> = [
    (
        [
            7.302340996007402,
            3.309900945872217,
            3.8919637841169687,
            0.0226838651475275,
            0.07779240087068905,
        ],
        -3.4410132683334105,
        1.8410277590217206,
    ),
    (
        [
            2047.4436050802753,
            34.98993776652534,
            2012.1638653780205,
            0.035365220975148194,
            0.25443671475429025,
        ],
        -1.8450375893826991,
        7.596798990853437,
    ),
    (
        [
            291.15480385738334,
            34.98993776652534,
            253.76045046738983,
            1.5953091976960718,
            0.809106425772134,
        ],
        -7.533968508162398,
        7.599288389168876,
    ),
    (
        [1.9459101490553132, 1.9459101490553132, 0.0, 0.0, 0.0],
        0.09058758342271091,
        0.6546536707079771,
    ),
    (
        [
            74.90173694196938,
            7.051244190036567,
            67.84961210036873,
            0.0005305936217691515,
            0.0003500579423011935,
        ],
        -0.40114679954746896,
        1.2397672474690287,
    ),
];

const MLKD_LS: Expected<5> = [
    (
        [
            3.0442608516435237,
            3.309900945872217,
            0.594178923335491,
            0.0226838651475275,
            0.07779240087068905,
        ],
        -1.0783581648001515,
        0.6689266028312658,
    ),
    (
        [
            35.8168849779508,
            34.98993776652534,
            8.871156111614628,
            0.035365220975148194,
            0.25443671475429025,
        ],
        -0.14215175554126555,
        0.2743989120363049,
    ),
    (
        [
            26.428245963962866,
            34.98993776652534,
            2.0622229168818937,
            1.5953091976960718,
            0.809106425772134,
        ],
        -0.3190072239328534,
        0.28814498824817214,
    ),
    (
        [0.9729550745276566, 1.9459101490553132, 0.0, 0.0, 0.0],
        0.045293791711355405,
        0.3273268353539886,
    ),
    (
        [
            12.781955008621097,
            7.051244190036567,
            4.627285805237337,
            0.0005305936217691515,
            0.0003500579423011935,
        ],
        -0.08352665959764623,
        0.2582997073576222,
    ),
];

#[test]
fn dist_matches_pytorch() {
    let make = |t| -> Box<dyn DistillLoss> {
        let config = DistConfig {
            temperature: t,
            ..DistConfig::default()
        };
        Box::new(config.build("distill").unwrap())
    };
    check("dist", make, &DIST);
}

#[test]
fn mlkd_matches_pytorch_plain_and_standardized() {
    let plain =
        |_| -> Box<dyn DistillLoss> { Box::new(MlkdConfig::default().build("distill").unwrap()) };
    check("mlkd", plain, &MLKD);
    let standardized = |_| -> Box<dyn DistillLoss> {
        let config = MlkdConfig {
            ce_weight: 0.5,
            kd_weight: 2.0,
            standardize: true,
            ..MlkdConfig::default()
        };
        Box::new(config.build("distill").unwrap())
    };
    check("mlkd-ls", standardized, &MLKD_LS);
}

#[test]
fn the_new_losses_are_chosen_by_name_and_refuse_bad_values() {
    let parse = |json: &str| serde_json::from_str::<LossConfig>(json);
    let dist = parse(r#"{"loss": "dist", "beta": 1.0}"#).unwrap();
    assert_eq!(dist.name(), "dist");
    assert_eq!(dist.temperature(), Some(4.0));
    let mlkd =
        parse(r#"{"loss": "mlkd", "temperatures": [1.0, 8.0, 3.0], "standardize": true}"#).unwrap();
    assert_eq!(mlkd.temperature(), Some(3.0), "the middle temperature");
    let unknown = parse(r#"{"loss": "mlkd", "temperature": 4.0}"#).unwrap_err();
    assert!(unknown.to_string().contains("temperature"), "{unknown}");
    let empty = parse(r#"{"loss": "mlkd", "temperatures": []}"#).unwrap();
    let message = empty.validate("distill").unwrap_err().to_string();
    assert!(message.contains("distill.temperatures"), "{message}");
    let cold = parse(r#"{"loss": "mlkd", "temperatures": [2.0, 0.0]}"#).unwrap();
    let message = cold.validate("distill").unwrap_err().to_string();
    assert!(
        message.contains("distill.temperatures: expected finite values > 0, got 0"),
        "{message}"
    );
    let negative = parse(r#"{"loss": "dist", "gamma": -1.0}"#).unwrap();
    let message = negative.validate("distill").unwrap_err().to_string();
    assert!(message.contains("distill.gamma"), "{message}");
}

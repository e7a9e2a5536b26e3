//! The teacher card: what a person checks before trusting a teacher, beyond its accuracy —
//! its test accuracy; its expected calibration error (ECE; Guo et al., ICML 2017, "On
//! Calibration of Modern Neural Networks": confidences split into 15 equal-width bins,
//! `sum_b |B_b|/n · |accuracy(B_b) − confidence(B_b)|`) as it is and after the distillation
//! temperature `T` (the targets a student actually sees are `softmax(z / T)`); for an
//! ensemble the mean top-1 agreement over pairs of members (how much they would teach
//! different things); and each teacher file's SHA-256. It is in every run's report
//! (`report.json`, the teacher's `card`) and printed by `kd-cli teach --card`.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Confidence bins of the expected calibration error.
pub const ECE_BINS: usize = 15;

/// A file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The file as the config names it.
    pub file: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What the card says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherCard {
    /// Top-1 accuracy on the test set.
    pub test_accuracy: f64,
    /// Expected calibration error of `softmax(z)`, 15 bins.
    pub ece: f64,
    /// The distillation temperature (1 without one).
    pub temperature: f64,
    /// Expected calibration error of `softmax(z / temperature)`.
    pub ece_at_temperature: f64,
    /// Mean top-1 agreement over pairs of ensemble members (`None`: one teacher).
    pub member_agreement: Option<f64>,
    /// The teacher's files (empty for a teacher the run trained).
    pub files: Vec<FileDigest>,
}

/// The expected calibration error of `logits` `[n, k]` against `labels` `[n]` over `bins`
/// equal-width confidence bins `(i/bins, (i+1)/bins]`.
pub fn expected_calibration_error(logits: &Tensor, labels: &Tensor, bins: usize) -> f64 {
    let probs = logits.to_kind(Kind::Double).softmax(-1, Kind::Double);
    let (confidence, predicted) = probs.max_dim(-1, false);
    let correct = predicted.eq_tensor(labels).to_kind(Kind::Double);
    let n = confidence.size()[0] as f64;
    let conf = Vec::<f64>::try_from(&confidence).unwrap_or_default();
    let right = Vec::<f64>::try_from(&correct).unwrap_or_default();
    let mut sums = vec![(0.0f64, 0.0f64, 0usize); bins];
    for (c, r) in conf.iter().zip(&right) {
        let bin = ((c * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        sums[bin] = (sums[bin].0 + c, sums[bin].1 + r, sums[bin].2 + 1);
    }
    sums.iter()
        .filter(|(_, _, count)| *count > 0)
        .map(|(c, r, _)| (r - c).abs() / n)
        .sum()
}

/// The mean, over pairs of members, of the fraction of images on which both predict the
/// same class (`None` for fewer than two members).
pub fn member_agreement(members: &[Tensor]) -> Option<f64> {
    let predicted: Vec<Tensor> = members.iter().map(|z| z.argmax(-1, false)).collect();
    let mut pairs = Vec::new();
    for (i, a) in predicted.iter().enumerate() {
        for b in &predicted[i + 1..] {
            let same = a.eq_tensor(b).to_kind(Kind::Double).mean(Kind::Double);
            pairs.push(same.double_value(&[]));
        }
    }
    (!pairs.is_empty()).then(|| pairs.iter().sum::<f64>() / pairs.len() as f64)
}

impl TeacherCard {
    /// The card of a teacher with test `logits` `[n, k]` for `labels` `[n]`, distilling
    /// at `temperature`, with its ensemble members' test logits (empty for one teacher)
    /// and its files.
    pub fn new(
        (logits, labels): (&Tensor, &Tensor),
        temperature: f64,
        members: &[Tensor],
        files: Vec<FileDigest>,
    ) -> Self {
        let correct = logits.argmax(-1, false).eq_tensor(labels);
        Self {
            test_accuracy: correct
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]),
            ece: expected_calibration_error(logits, labels, ECE_BINS),
            temperature,
            ece_at_temperature: expected_calibration_error(
                &(logits / temperature),
                labels,
                ECE_BINS,
            ),
            member_agreement: member_agreement(members),
            files,
        }
    }

    /// The card as text, one fact per line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "teacher card\n  test accuracy            {:.2}%\n  ECE (15 bins)            {:.4}\n  ECE at T = {:<13} {:.4}\n",
            100.0 * self.test_accuracy,
            self.ece,
            self.temperature,
            self.ece_at_temperature
        );
        if let Some(a) = self.member_agreement {
            out += &format!("  member agreement (top-1) {:.2}%\n", 100.0 * a);
        }
        for f in &self.files {
            out += &format!("  {}  sha256 {}\n", f.file, f.sha256);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_and_agreement_are_pytorchs() {
        // import torch
        // z = torch.tensor([[4.,0,0],[0,3,1],[2,2,0],[0,0,5],[1,0,0],[0,2,2.5],[3,-1,0],[0,0,.5]])
        // y = torch.tensor([0, 1, 1, 2, 1, 1, 0, 0])
        // def ece(z, y, bins=15):
        //     p = z.softmax(-1); conf, pred = p.max(-1); acc = (pred == y).float()
        //     edges = torch.linspace(0, 1, bins + 1); e = 0.0
        //     for i in range(bins):
        //         m = (conf > edges[i]) & (conf <= edges[i + 1])
        //         if m.any(): e += m.float().mean() * (acc[m].mean() - conf[m].mean()).abs()
        //     return float(e)
        // ece(z, y), ece(z / 4, y)  # 0.2946363389492035 0.4142053723335266
        // (z.argmax(-1) == torch.tensor([0,1,0,2,1,2,0,1])).float().mean()  # 0.75
        let z = Tensor::from_slice(&[
            4.0f32, 0., 0., 0., 3., 1., 2., 2., 0., 0., 0., 5., 1., 0., 0., 0., 2., 2.5, 3., -1.,
            0., 0., 0., 0.5,
        ])
        .view([8, 3]);
        let y = Tensor::from_slice(&[0i64, 1, 1, 2, 1, 1, 0, 0]);
        assert!((expected_calibration_error(&z, &y, 15) - 0.294_636_3).abs() < 1e-6);
        assert!((expected_calibration_error(&(&z / 4.0), &y, 15) - 0.414_205_4).abs() < 1e-6);
        let other = Tensor::from_slice(&[0i64, 1, 0, 2, 1, 2, 0, 1])
            .one_hot(3)
            .to_kind(Kind::Float);
        assert_eq!(member_agreement(&[z.shallow_clone(), other]), Some(0.75));
        assert_eq!(member_agreement(&[z.shallow_clone()]), None);
        let card = TeacherCard::new((&z, &y), 4.0, &[], Vec::new());
        assert_eq!(card.test_accuracy, 0.5);
        assert!(card.text().contains("ECE at T = 4"));
    }
}

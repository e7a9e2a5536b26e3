//! An ensemble of two teachers against PyTorch: the combined logits in probability space
//! (`log(sum w_i softmax(z_i))`, finite where a member's probabilities underflow) and in
//! logit space, with weights 1 and 3 normalized to 1/4 and 3/4; bad weights are refused.

use kd_models::{Combine, Ensemble, Model};
use tch::{nn, Device, Tensor};

/// A frozen "teacher" whose logits are `rows` whatever the images.
fn fixed(rows: [[f32; 3]; 2]) -> Model {
    let logits = Tensor::from_slice(rows.as_flattened()).view([2, 3]);
    let module = nn::func_t(move |_images, _train| logits.shallow_clone());
    Model::from_frozen("fixed", "Fixed", module, "fixed".into(), Device::Cpu)
}

fn members() -> Vec<(Model, f64)> {
    vec![
        (fixed([[2.0, 0.0, -1.0], [-50.0, 60.0, 0.0]]), 1.0),
        (fixed([[0.0, 3.0, 1.0], [10.0, -40.0, 0.0]]), 3.0),
    ]
}

fn assert_close(got: &Tensor, expected: &[f32]) {
    let expected = Tensor::from_slice(expected).view([2, 3]);
    let gap = (got - &expected).abs().max().double_value(&[]);
    assert!(gap < 1e-5, "{got} vs {expected}");
}

#[test]
fn an_ensemble_combines_its_members_as_pytorch_does() {
    let images = Tensor::zeros([2, 1, 4, 4], (tch::Kind::Float, Device::Cpu));
    // import torch
    // a = torch.tensor([[2., 0., -1.], [-50., 60., 0.]]); b = torch.tensor([[0., 3., 1.], [10., -40., 0.]])
    // torch.log(0.25 * a.softmax(-1) + 0.75 * b.softmax(-1)); 0.25 * a + 0.75 * b
    let probability = Ensemble::new(members(), Combine::Probability).unwrap();
    assert_close(
        &probability.combined(&images),
        &[
            -1.416_934_1,
            -0.413_404_4,
            -2.341_857_2,
            -0.287_727_5,
            -1.386_294_4,
            -10.287_727,
        ],
    );
    let logits = Ensemble::new(members(), Combine::Logits).unwrap();
    assert_close(
        &logits.combined(&images),
        &[0.5, 2.25, 0.5, -5.0, -15.0, 0.0],
    );
    assert_eq!(probability.members()[1].1, 0.75);

    for weights in [[0.0, 0.0], [-1.0, 2.0], [f64::NAN, 1.0]] {
        let members = members()
            .into_iter()
            .zip(weights)
            .map(|((m, _), w)| (m, w))
            .collect();
        let message = Ensemble::new(members, Combine::Probability)
            .unwrap_err()
            .to_string();
        assert!(message.contains("teacher.ensemble.weight"), "{message}");
    }
}

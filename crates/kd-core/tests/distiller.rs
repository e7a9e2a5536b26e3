//! The Distiller: the teacher is frozen and runs in inference mode without gradients; the
//! student's step loss is the loss against the teacher's logits on the same images.

use kd_core::{Distiller, HintonKdConfig};
use kd_models::{CnnConfig, Model, ModelConfig, StudentConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn a_step_trains_the_student_only_against_the_teachers_inference_logits() {
    tch::manual_seed(3);
    // A teacher with dropout and batch norm: inference mode makes its logits deterministic.
    let teacher_cfg = ModelConfig::Cnn(CnnConfig {
        channels: vec![4],
        convs_per_stage: 1,
        hidden: 8,
        dropout: 0.5,
    });
    let student_cfg = ModelConfig::Student(StudentConfig {
        blocks: 1,
        convs_per_block: 1,
        width: 4,
    });
    let teacher = Model::new(&teacher_cfg, 1, 8, 3, Device::Cpu).unwrap();
    let student = Model::new(&student_cfg, 1, 8, 3, Device::Cpu).unwrap();
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let distiller = Distiller::new(teacher, student, Box::new(loss));
    let images = Tensor::rand([6, 1, 8, 8], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);

    let first = distiller.teacher_logits(&images);
    assert!(!first.requires_grad());
    assert!(
        first.equal(&distiller.teacher_logits(&images)),
        "dropout must be off"
    );

    let (student_logits, parts) = distiller.step(&images, &labels);
    parts.total.backward();
    let expected = distiller.loss_with(&student_logits, &first, &labels);
    let (got, want) = (
        parts.total.double_value(&[]),
        expected.total.double_value(&[]),
    );
    // The same float32 computation twice: equal up to rounding on any CPU.
    assert!(
        (got - want).abs() <= 1e-6 + 1e-5 * want.abs(),
        "{got} vs {want}"
    );
    for (name, t) in distiller.teacher().var_store().variables() {
        assert!(!t.requires_grad(), "teacher {name} must be frozen");
    }
    let grads = distiller.student().var_store().trainable_variables();
    assert!(
        grads.iter().all(|t| t.grad().defined()),
        "every student parameter gets a gradient"
    );
}

//! The Distiller: the teacher runs in inference mode without gradients; the student's step
//! loss is the loss against the teacher's logits on the same images, and cached logits give
//! the live teacher's loss.

use kd_core::{Distiller, Examples, HintonKdConfig, LogitCache, Split};
use kd_models::{CnnConfig, Model, ModelConfig, StudentConfig};
use tch::{Device, Kind, Tensor};

fn models() -> (Model, Model) {
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
    (teacher, student)
}

#[test]
fn a_step_trains_the_student_only_against_the_teachers_inference_logits() {
    let (teacher, student) = models();
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let distiller = Distiller::live(&teacher, &loss);
    let images = Tensor::rand([6, 1, 8, 8], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);
    let indices = Tensor::arange(6, (Kind::Int64, Device::Cpu));
    let batch = Examples {
        images: &images,
        labels: &labels,
        indices: &indices,
    };

    let first = distiller.teacher_logits(batch, Split::Train).unwrap();
    assert!(!first.requires_grad());
    assert!(
        first.equal(&distiller.teacher_logits(batch, Split::Train).unwrap()),
        "dropout must be off"
    );

    let (student_logits, parts) = distiller.step(&student, batch, Split::Train, true);
    parts.total.backward();
    let expected = distiller
        .loss_with(&student_logits, &first, &labels)
        .unwrap();
    let (got, want) = (
        parts.total.double_value(&[]),
        expected.total.double_value(&[]),
    );
    // The same float32 computation twice: equal up to rounding on any CPU.
    assert!(
        (got - want).abs() <= 1e-6 + 1e-5 * want.abs(),
        "{got} vs {want}"
    );
    for (name, t) in teacher.var_store().variables() {
        assert!(!t.grad().defined(), "teacher {name} must get no gradient");
    }
    let grads = student.var_store().trainable_variables();
    assert!(
        grads.iter().all(|t| t.grad().defined()),
        "every student parameter gets a gradient"
    );
}

#[test]
fn cached_logits_are_gathered_by_dataset_index_per_split() {
    let (teacher, student) = models();
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let images = Tensor::rand([5, 1, 8, 8], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1]);
    let all = tch::no_grad(|| teacher.forward_t(&images, false));
    // The training cache holds the real logits; the validation cache their negation, so
    // a gather from the wrong split cannot pass.
    let (train, val) = (
        LogitCache::from_logits(all.shallow_clone()),
        LogitCache::from_logits(-&all),
    );
    let cached = Distiller::cached(&train, &val, &loss);
    let live = Distiller::live(&teacher, &loss);
    // A batch of images 3 and 1, in that order.
    let pick = Tensor::from_slice(&[3i64, 1]);
    let (batch_images, batch_labels) =
        (images.index_select(0, &pick), labels.index_select(0, &pick));
    let batch = Examples {
        images: &batch_images,
        labels: &batch_labels,
        indices: &pick,
    };
    let want = live.teacher_logits(batch, Split::Train).unwrap();
    let got = cached.teacher_logits(batch, Split::Train).unwrap();
    assert!(got.allclose(&want, 1e-5, 1e-6, false));
    let got_val = cached.teacher_logits(batch, Split::Validation).unwrap();
    assert!(got_val.allclose(&-&want, 1e-5, 1e-6, false));
    let (_, from_cache) = cached.step(&student, batch, Split::Train, false);
    let (_, from_live) = live.step(&student, batch, Split::Train, false);
    let (a, b) = (
        from_cache.total.double_value(&[]),
        from_live.total.double_value(&[]),
    );
    assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{a} vs {b}");
}

#[test]
fn mixup_gives_teacher_and_student_the_same_mixed_images() {
    // The student is the teacher's twin (same architecture and weights, no dropout or batch
    // norm): their logits agree exactly when they see the same images, so the distillation
    // term of a mixed batch is 0 only if both saw the same mix.
    let cfg = ModelConfig::Student(StudentConfig {
        blocks: 1,
        convs_per_block: 1,
        width: 4,
    });
    let teacher = Model::new(&cfg, 1, 8, 3, Device::Cpu).unwrap();
    let student = Model::new(&cfg, 1, 8, 3, Device::Cpu).unwrap();
    let weights: std::collections::BTreeMap<String, Tensor> =
        teacher.var_store().variables().into_iter().collect();
    student.copy_from(&weights, false).unwrap();
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let distiller = Distiller::live(&teacher, &loss)
        .with_mixup(1.0, "distill.mixup")
        .unwrap();
    let images = Tensor::rand([8, 1, 8, 8], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
    let indices = Tensor::arange(8, (Kind::Int64, Device::Cpu));
    let batch = Examples {
        images: &images,
        labels: &labels,
        indices: &indices,
    };
    let (mixed_logits, parts) = distiller.step(&student, batch, Split::Train, true);
    let soft = parts.parts[1].1.double_value(&[]);
    assert!(soft.abs() < 1e-6, "the teacher saw other images: KL {soft}");
    // And the batch was mixed: the student's logits differ from those on the raw images.
    let raw = student.forward_t(&images, true);
    assert!(
        (mixed_logits - raw).abs().max().double_value(&[]) > 1e-4,
        "mixup left the images as they were"
    );
    // Validation batches are never mixed.
    let (val_logits, _) = distiller.step(&student, batch, Split::Validation, false);
    assert!(val_logits.allclose(&student.forward_t(&images, false), 1e-6, 1e-6, false));
}

#[test]
fn mixup_refuses_cached_logits_and_values_outside_0_1() {
    let (teacher, _) = models();
    let loss = HintonKdConfig::default().build("distill").unwrap();
    let logits = tch::no_grad(|| {
        teacher.forward_t(
            &Tensor::rand([4, 1, 8, 8], (Kind::Float, Device::Cpu)),
            false,
        )
    });
    let cache = LogitCache::from_logits(logits);
    let err = Distiller::cached(&cache, &cache, &loss)
        .with_mixup(0.2, "distill.mixup")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("distill.mixup") && err.contains("live"),
        "{err}"
    );
    let err = Distiller::live(&teacher, &loss)
        .with_mixup(1.5, "distill.mixup")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[0, 1]"), "{err}");
    // 0 leaves mixup off, even with a cache.
    assert!(Distiller::cached(&cache, &cache, &loss)
        .with_mixup(0.0, "distill.mixup")
        .is_ok());
}

/// The rule a fit applies to its steps, and a run to its config before anything trains: a
/// CUDA graph needs a capturable loss (not DKD), no mixup, and cached logits, if any, on the
/// training device, where they are kept up to 1 GiB.
#[test]
fn graphed_steps_need_a_capturable_loss_no_mixup_and_cached_logits_on_the_device() {
    use kd_core::distiller::steps_capturable;
    use kd_core::{CacheDtype, DistillLoss, DkdConfig};
    let gpu = Device::Cuda(0);
    let hinton = HintonKdConfig {
        alpha: 0.5,
        temperature: 4.0,
    }
    .build("distill")
    .unwrap();
    let dkd = DkdConfig::default().build("distill").unwrap();
    let (hinton, dkd): (&dyn DistillLoss, &dyn DistillLoss) = (&hinton, &dkd);
    assert!(steps_capturable(Some(hinton), None, false, gpu));
    assert!(steps_capturable(None, None, false, gpu), "a FitNets hint");
    assert!(!steps_capturable(Some(dkd), None, false, gpu));
    assert!(!steps_capturable(Some(hinton), None, true, gpu), "mixup");
    assert!(steps_capturable(Some(hinton), Some(gpu), false, gpu));
    assert!(!steps_capturable(
        Some(hinton),
        Some(Device::Cpu),
        false,
        gpu
    ));
    // 2^28 float32 logits are 1 GiB: kept on the device; one more goes to host memory.
    let limit = 1 << 28;
    assert_eq!(LogitCache::placement(limit, CacheDtype::F32, gpu), gpu);
    assert_eq!(
        LogitCache::placement(limit + 1, CacheDtype::F32, gpu),
        Device::Cpu
    );
    assert_eq!(LogitCache::placement(limit + 1, CacheDtype::F16, gpu), gpu);
}

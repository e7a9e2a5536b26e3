//! A teacher's classes mapped onto the dataset's, against PyTorch: a dataset class fed by
//! one teacher class keeps its logit, one fed by several gets their `logsumexp`, so that
//! its probability is the sum of theirs renormalized over the mapped classes.

use kd_models::{ClassMap, ClassMapConfig, Model};
use tch::{nn, Device, Kind, Tensor};

#[test]
fn mapped_logits_are_the_logsumexp_of_the_teacher_classes_that_feed_each_class() {
    let rows = [[2.0f32, 0.0, -1.0, 5.0, 0.5], [-50.0, 60.0, 0.0, 1.0, 3.0]];
    let logits = Tensor::from_slice(rows.as_flattened()).view([2, 5]);
    let module = nn::func_t(move |_images, _train| logits.shallow_clone());
    let teacher = Model::from_frozen("fixed", "Fixed", module, "fixed".into(), Device::Cpu);
    // Dataset class 0 <- teacher class 3, 1 <- {0, 2}, 2 <- {1, 4}.
    let table = [("3", 0), ("0", 1), ("2", 1), ("1", 2), ("4", 2)];
    let config = ClassMapConfig::Table(table.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    let map = ClassMap::new(&config, 3).unwrap();
    map.check(5).unwrap();
    let mapped = teacher.map_classes(map);
    let images = Tensor::zeros([2, 1, 4, 4], (Kind::Float, Device::Cpu));
    let got = mapped.forward_t(&images, false);
    // import torch
    // z = torch.tensor([[2., 0., -1., 5., 0.5], [-50., 60., 0., 1., 3.]])
    // torch.stack([z[:, 3], torch.logsumexp(z[:, [0, 2]], 1), torch.logsumexp(z[:, [1, 4]], 1)], 1)
    let expected =
        Tensor::from_slice(&[5.0f32, 2.048_587_3, 0.974_077, 1.0, 0.0, 60.0]).view([2, 3]);
    let gap = (&got - &expected).abs().max().double_value(&[]);
    assert!(gap < 1e-5, "{got} vs {expected}");
    // z.softmax(-1)[:, [0, 2]].sum(1) / z.softmax(-1)[:, [3, 0, 2, 1, 4]].sum(1): the class's
    // share of the mapped probability (every teacher class is mapped here, so the sum is 1).
    let share = got.softmax(-1, Kind::Float).double_value(&[0, 1]);
    assert!((share - 0.048_841_42).abs() < 1e-6, "{share}");
}

#[test]
fn a_list_of_indices_picks_one_teacher_class_per_dataset_class() {
    let logits = Tensor::from_slice(&[0.5f32, 1.5, -2.0, 4.0]).view([1, 4]);
    let map = ClassMap::new(&ClassMapConfig::Indices(vec![3, 0]), 2).unwrap();
    let got = nn::ModuleT::forward_t(&map, &logits, false);
    assert_eq!(
        Vec::<f32>::try_from(got.flatten(0, -1)).unwrap(),
        [4.0, 0.5]
    );
}

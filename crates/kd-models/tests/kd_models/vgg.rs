//! VGG: parameter counts against Keras, names against torchvision, the forward pass against
//! PyTorch on deterministic weights loaded by name, and strict pretrained loading.

use std::path::{Path, PathBuf};

use kd_models::{Model, ModelConfig, ModelError, Summary, VggConfig};
use tch::{Device, Kind, Tensor};

fn vgg(depth: usize, pretrained: Option<PathBuf>, in_channels: usize) -> kd_models::Result<Model> {
    Model::new(
        &ModelConfig::Vgg(VggConfig { depth, pretrained }),
        in_channels,
        32,
        10,
        Device::Cpu,
    )
}

/// The deterministic value of a torchvision-named VGG tensor, as in the Python below.
fn fill(name: &str, shape: &[i64]) -> Tensor {
    let i: f64 = name.split('.').nth(1).unwrap().parse().unwrap();
    let n: i64 = shape.iter().product();
    let base = Tensor::arange(n, (Kind::Float, Device::Cpu));
    let v = if name.ends_with("weight") {
        let fan_in = (n / shape[0]) as f64;
        (base * 0.37 + i).sin() * (2.0 / fan_in.sqrt())
    } else {
        (base + i).cos() * 0.01
    };
    v.reshape(shape)
}

/// Writes every `features.*` tensor of a VGG of `depth` for 3-channel inputs to `path`.
fn write_features(depth: usize, path: &Path) {
    let m = vgg(depth, None, 3).unwrap();
    let mut tensors: Vec<(String, Tensor)> = m
        .var_store()
        .variables()
        .into_iter()
        .filter(|(k, _)| k.starts_with("features."))
        .map(|(k, t)| {
            let v = fill(&k, &t.size());
            (k, v)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&tensors, path).unwrap();
}

/// The globally pooled features `[b, 512]` of `m` on `x`.
fn pooled(m: &Model, x: &Tensor) -> Tensor {
    let mut out = None;
    let _ = tch::no_grad(|| {
        m.layers().forward_each(x, false, |layer, y| {
            if layer.name == "avgpool" {
                out = Some(y.shallow_clone());
            }
        })
    });
    out.unwrap()
}

fn input() -> Tensor {
    (Tensor::arange(3 * 32 * 32, (Kind::Float, Device::Cpu)) * 0.05)
        .sin()
        .abs()
        .reshape([1, 3, 32, 32])
}

#[test]
fn vgg19_has_the_parameter_count_keras_printed_for_the_seed_teacher() {
    // The notebook's `teacher_model.summary()`: vgg19 (Functional) 20,024,384 parameters,
    // dense 5,130, "Total params: 20,029,514".
    let m = vgg(19, None, 3).unwrap();
    let s = Summary::new("teacher", &m, [3, 32, 32]);
    assert_eq!(s.total(), 20_029_514);
    assert_eq!(s.trainable, 20_029_514);
    assert_eq!(s.non_trainable, 0);
    let features: usize = s
        .rows
        .iter()
        .filter(|r| r.name.starts_with("features."))
        .map(|r| r.parameters)
        .sum();
    assert_eq!(features, 20_024_384);
    let last = s.rows.iter().find(|r| r.name == "features.36").unwrap();
    assert_eq!(
        (last.kind, last.output_shape.as_slice()),
        ("MaxPool2d", &[512, 1, 1][..])
    );
    let printed = s.to_string();
    assert!(printed.contains("Total params: 20,029,514"), "{printed}");
}

#[test]
fn vgg19_conv_names_are_torchvisions() {
    // [i for i, m in enumerate(torchvision.models.vgg19().features) if isinstance(m, nn.Conv2d)]
    let expected = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34];
    let m = vgg(19, None, 3).unwrap();
    let vars = m.var_store().variables();
    let mut convs: Vec<usize> = vars
        .keys()
        .filter_map(|k| {
            k.strip_prefix("features.")?
                .strip_suffix(".weight")?
                .parse()
                .ok()
        })
        .collect();
    convs.sort();
    assert_eq!(convs, expected);
    assert_eq!(vars["features.34.weight"].size(), [512, 512, 3, 3]);
    assert_eq!(vars["classifier.weight"].size(), [10, 512]);
}

#[test]
fn pretrained_vgg19_computes_what_pytorch_computes() {
    // PyTorch 2.11: the torchvision VGG19 feature stack with every tensor set by the same
    // formula as `fill` above, on the same input, globally average-pooled:
    //   cfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
    //          512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M']
    //   layers, c = [], 3
    //   for v in cfg:
    //       if v == 'M': layers.append(nn.MaxPool2d(2))
    //       else: layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]; c = v
    //   features = nn.Sequential(*layers)
    //   def fill(name, t):
    //       i = int(name.split('.')[1]); base = torch.arange(t.numel(), dtype=torch.float32)
    //       v = (torch.sin(base * 0.37 + i) * (2.0 / t[0].numel() ** 0.5)
    //            if name.endswith('weight') else 0.01 * torch.cos(base + i))
    //       return v.reshape(t.shape)
    //   with torch.no_grad():
    //       for n, p in features.named_parameters(): p.copy_(fill('features.' + n, p))
    //       x = torch.sin(torch.arange(3*32*32, dtype=torch.float32) * 0.05).abs().reshape(1, 3, 32, 32)
    //       f = features(x).mean((2, 3))
    //   print(f[0, 3].item(), f[0, 4].item(), f[0, 100:110].tolist(), f.sum().item())
    let expected_3_4 = [0.007413441315293312, 0.010154595598578453];
    let expected_100_110 = [
        0.0,
        0.0,
        0.0,
        0.0036569423973560333,
        0.010526281781494617,
        0.006999169941991568,
        0.0,
        0.0,
        0.0,
        0.001294068992137909,
    ];
    let expected_sum = 1.7138882875442505;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vgg19.safetensors");
    write_features(19, &file);
    let m = vgg(19, Some(file), 3).unwrap();
    let loaded = m.pretrained().unwrap();
    assert_eq!((loaded.tensors, loaded.parameters), (32, 20_024_384));
    let f = pooled(&m, &input());
    // float32 through 16 convolutions: 1e-4 relative plus 1e-5 of the largest feature
    // absolute (a ReLU'd feature is an exact zero here, but a pre-activation within rounding
    // of zero can land on either side on another CPU's kernels).
    let scale = expected_100_110
        .iter()
        .chain(&expected_3_4)
        .fold(0.0f64, |m: f64, v: &f64| m.max(v.abs()));
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-4 * want.abs() + 1e-5 * scale;
    for (j, want) in [(3, expected_3_4[0]), (4, expected_3_4[1])]
        .into_iter()
        .chain(
            expected_100_110
                .iter()
                .enumerate()
                .map(|(k, &w)| (100 + k as i64, w)),
        )
    {
        let got = f.double_value(&[0, j]);
        assert!(close(got, want), "feature {j}: got {got}, PyTorch {want}");
    }
    let sum = f.sum(Kind::Double).double_value(&[]);
    assert!(
        close(sum, expected_sum),
        "sum: got {sum}, PyTorch {expected_sum}"
    );
}

#[test]
fn rgb_weights_load_into_a_gray_model_as_the_same_function() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vgg11.safetensors");
    write_features(11, &file);
    let rgb = vgg(11, Some(file.clone()), 3).unwrap();
    let gray = vgg(11, Some(file), 1).unwrap();
    assert_eq!(gray.pretrained().unwrap().adapted, ["features.0.weight"]);
    let g = input().narrow(1, 0, 1);
    let a = pooled(&gray, &g);
    let b = pooled(&rgb, &g.repeat([1, 3, 1, 1]));
    let diff = (a - &b).abs().max().double_value(&[]);
    assert!(
        diff <= 1e-5 * b.abs().max().double_value(&[]).max(1e-6),
        "{diff}"
    );
}

fn pretrained_error(depth: usize, file: PathBuf) -> String {
    match vgg(depth, Some(file), 3) {
        Err(e @ ModelError::Pretrained { .. }) => e.to_string(),
        other => panic!("expected a pretrained-weights error, got {other:?}"),
    }
}

#[test]
fn weights_of_another_architecture_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vgg19.safetensors");
    write_features(19, &file);
    // VGG16 has no features.34: the VGG19 file holds tensors the model lacks.
    let msg = pretrained_error(16, file.clone());
    assert!(
        msg.contains("vgg19.safetensors") && msg.contains("another architecture"),
        "{msg}"
    );
    // VGG19 weights for VGG11: features.3 is a conv in VGG11 but a pool in VGG19.
    let msg = pretrained_error(11, file);
    assert!(
        msg.contains("missing tensor") || msg.contains("no counterpart"),
        "{msg}"
    );
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = vgg(11, None, 3).unwrap();
    let mut tensors: Vec<(String, Tensor)> = m
        .var_store()
        .variables()
        .into_iter()
        .filter(|(k, _)| k.starts_with("features."))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));

    let missing = dir.path().join("missing.safetensors");
    let without: Vec<_> = tensors
        .iter()
        .filter(|(k, _)| k != "features.8.bias")
        .collect();
    let without: Vec<(&str, &Tensor)> = without.iter().map(|(k, t)| (k.as_str(), t)).collect();
    Tensor::write_safetensors(&without, &missing).unwrap();
    let msg = pretrained_error(11, missing);
    assert!(msg.contains("missing tensor features.8.bias"), "{msg}");

    let misshaped = dir.path().join("misshaped.safetensors");
    let mut bad: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| (k.clone(), t.copy())).collect();
    bad.iter_mut()
        .find(|(k, _)| k == "features.3.weight")
        .unwrap()
        .1 = Tensor::zeros([128, 64, 5, 5], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&bad, &misshaped).unwrap();
    let msg = pretrained_error(11, misshaped);
    assert!(
        msg.contains("features.3.weight")
            && msg.contains("[128, 64, 3, 3]")
            && msg.contains("[128, 64, 5, 5]"),
        "{msg}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let err = vgg(11, Some(garbage), 3).unwrap_err();
    assert!(err.to_string().contains("garbage.safetensors"), "{err}");
}

#[test]
fn vgg_refuses_inputs_smaller_than_32() {
    let err = Model::new(
        &ModelConfig::Vgg(VggConfig::default()),
        1,
        28,
        10,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("pad_to = 32"), "{err}");
}

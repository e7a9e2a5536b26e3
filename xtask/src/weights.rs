//! `cargo xtask fetch-weights vgg19`: ImageNet-pretrained VGG19 as torchvision publishes it
//! (`vgg19-dcbb9e9d.pth`, Simonyan & Zisserman 2015; the 8 hex digits in the name are the
//! start of the file's SHA-256, which is what `torch.hub` checks and what is checked here),
//! from the published URL or `--mirror URL` / `KD_MIRROR`. It is converted once to
//! `data/weights/vgg19.safetensors` with the set-up venv's PyTorch
//! (`pth_to_safetensors.py`, `weights_only=True`), and the result's header is checked
//! against VGG19's 32 feature tensors (names `features.N.weight|bias`, shapes, dtype) before
//! it is renamed into place.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::download::{download_verified, Checksum};

/// Where torchvision publishes its weights.
pub const TORCHVISION_URL: &str = "https://download.pytorch.org/models";

/// A published set of weights and the tensors kd needs from it.
#[derive(Debug, Clone)]
pub struct WeightsSpec {
    /// Name given on the command line.
    pub name: &'static str,
    /// Published file name.
    pub file: &'static str,
    /// Published checksum.
    pub checksum: Checksum,
    /// Converted file name under `data/weights/`.
    pub output: &'static str,
    /// Tensors the converted file must hold, with their shapes (under `prefix`).
    pub expected: Vec<(String, Vec<u64>)>,
    /// Name prefix of the tensors kd loads; others under it mean another architecture.
    pub prefix: &'static str,
}

/// torchvision's VGG19 (configuration E) feature tensors: `(name, shape)`.
pub fn vgg19_features() -> Vec<(String, Vec<u64>)> {
    let cfg = [
        64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
    ];
    let (mut out, mut index, mut c_in) = (Vec::new(), 0, 3u64);
    for c in cfg {
        if c == 0 {
            index += 1;
        } else {
            out.push((format!("features.{index}.weight"), vec![c, c_in, 3, 3]));
            out.push((format!("features.{index}.bias"), vec![c]));
            index += 2;
            c_in = c;
        }
    }
    out
}

/// The weights `cargo xtask fetch-weights NAME` knows.
pub fn spec(name: &str) -> Result<WeightsSpec> {
    match name {
        "vgg19" => Ok(WeightsSpec {
            name: "vgg19",
            file: "vgg19-dcbb9e9d.pth",
            checksum: Checksum::Sha256Prefix("dcbb9e9d"),
            output: "vgg19.safetensors",
            expected: vgg19_features(),
            prefix: "features.",
        }),
        other => bail!("fetch-weights: expected vgg19, got {other:?}"),
    }
}

/// Reads the JSON header of a safetensors file, refusing sizes the file cannot hold.
pub fn read_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    use std::io::Read;
    let what = path.display();
    let mut f = std::fs::File::open(path).with_context(|| format!("{what}: cannot open"))?;
    let len = f
        .metadata()
        .with_context(|| format!("{what}: cannot stat"))?
        .len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .with_context(|| format!("{what}: too short for a safetensors header"))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 || n > len - 8 {
        bail!("{what}: header length {n} exceeds the file ({len} bytes)");
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head)
        .with_context(|| format!("{what}: truncated header"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&head).with_context(|| format!("{what}: header is not JSON"))?;
    let serde_json::Value::Object(map) = json else {
        bail!("{what}: header is not a JSON object");
    };
    for (name, info) in &map {
        if name == "__metadata__" {
            continue;
        }
        let end = info["data_offsets"][1].as_u64().unwrap_or(u64::MAX);
        if end > len - 8 - n {
            bail!(
                "{what}: tensor {name} ends at byte {end}, past the data ({} bytes)",
                len - 8 - n
            );
        }
    }
    Ok(map)
}

/// Checks that the safetensors file at `path` holds exactly the expected tensors under
/// `spec.prefix`, as float32 with the expected shapes.
pub fn check_converted(spec: &WeightsSpec, path: &Path) -> Result<()> {
    let header = read_header(path)?;
    let what = path.display();
    for (name, shape) in &spec.expected {
        let Some(info) = header.get(name) else {
            bail!("{what}: missing tensor {name} (is this {}?)", spec.name);
        };
        let got: Vec<u64> = info["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_u64()).collect())
            .unwrap_or_default();
        if &got != shape {
            bail!("{what}: tensor {name}: expected shape {shape:?}, got {got:?}");
        }
        if info["dtype"] != "F32" {
            bail!(
                "{what}: tensor {name}: expected dtype F32, got {}",
                info["dtype"]
            );
        }
    }
    if let Some(extra) = header
        .keys()
        .find(|k| k.starts_with(spec.prefix) && !spec.expected.iter().any(|(n, _)| n == *k))
    {
        bail!(
            "{what}: unexpected tensor {extra}: weights of another architecture than {}",
            spec.name
        );
    }
    Ok(())
}

/// Downloads (if needed), converts and checks `spec` under `dir`; returns the converted file.
pub fn fetch_weights(
    spec: &WeightsSpec,
    mirror: Option<&str>,
    dir: &Path,
    python: &Path,
) -> Result<PathBuf> {
    let out = dir.join(spec.output);
    if check_converted(spec, &out).is_ok() {
        eprintln!("xtask: {} already converted and intact", out.display());
        return Ok(out);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let pth = dir.join(spec.file);
    if !(pth.is_file() && spec.checksum.verify_file(&pth).is_ok()) {
        let url = format!(
            "{}/{}",
            mirror.unwrap_or(TORCHVISION_URL).trim_end_matches('/'),
            spec.file
        );
        eprintln!("xtask: downloading {url}");
        download_verified(&url, &pth, spec.checksum)?;
    }
    if !python.exists() {
        bail!(
            "{}: no Python with PyTorch to convert {}; run `cargo xtask setup` first",
            python.display(),
            pth.display()
        );
    }
    let partial = dir.join(format!("{}.partial", spec.output));
    eprintln!("xtask: converting {} to {}", pth.display(), out.display());
    let result = (|| {
        let status = Command::new(python)
            .arg("-c")
            .arg(include_str!("pth_to_safetensors.py"))
            .arg(&pth)
            .arg(&partial)
            .status()
            .with_context(|| format!("cannot start {}", python.display()))?;
        if !status.success() {
            bail!(
                "{}: conversion to safetensors failed ({status})",
                pth.display()
            );
        }
        check_converted(spec, &partial).with_context(|| {
            format!("{}: converted weights are not {}", pth.display(), spec.name)
        })?;
        std::fs::rename(&partial, &out)
            .with_context(|| format!("{}: cannot rename", partial.display()))
    })();
    if result.is_err() {
        std::fs::remove_file(&partial).ok();
    }
    result?;
    eprintln!("xtask: {} ready", out.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::serve;

    /// The venv's Python with PyTorch, or `None` (the test then says why it skips).
    fn python(test: &str) -> Option<PathBuf> {
        let p = crate::setup::venv_python();
        kd_testkit::require(
            test,
            p.exists().then_some(p),
            "no venv Python with PyTorch (run `cargo xtask setup`)",
        )
    }

    /// A small torchvision-style state dict saved by PyTorch: two convs and a classifier.
    ///   sd = {'features.0.weight': torch.arange(54.).reshape(2, 3, 3, 3),
    ///         'features.0.bias': torch.tensor([0.5, -0.5]),
    ///         'features.2.weight': torch.ones(4, 2, 3, 3),
    ///         'features.2.bias': torch.zeros(4),
    ///         'classifier.0.weight': torch.full((3, 4), 2.0)}
    fn tiny_pth(python: &Path, path: &Path) {
        let script = "import sys, torch; torch.save({'features.0.weight': torch.arange(54.).reshape(2, 3, 3, 3), 'features.0.bias': torch.tensor([0.5, -0.5]), 'features.2.weight': torch.ones(4, 2, 3, 3), 'features.2.bias': torch.zeros(4), 'classifier.0.weight': torch.full((3, 4), 2.0)}, sys.argv[1])";
        let ok = Command::new(python)
            .args(["-c", script])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn tiny_spec(checksum: Checksum) -> WeightsSpec {
        WeightsSpec {
            name: "tiny",
            file: "tiny-0000.pth",
            checksum,
            output: "tiny.safetensors",
            expected: vec![
                ("features.0.weight".into(), vec![2, 3, 3, 3]),
                ("features.0.bias".into(), vec![2]),
                ("features.2.weight".into(), vec![4, 2, 3, 3]),
                ("features.2.bias".into(), vec![4]),
            ],
            prefix: "features.",
        }
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// Serves the tiny state dict as `/tiny-0000.pth`; returns the venv's Python, the base
    /// URL and the file's checksum in torchvision's style. `None` (and a note) without a venv.
    fn serve_tiny_pth(test: &str) -> Option<(PathBuf, String, Checksum)> {
        let python = python(test)?;
        let src = tempfile::tempdir().unwrap();
        let pth = src.path().join("tiny.pth");
        tiny_pth(&python, &pth);
        let bytes = std::fs::read(&pth).unwrap();
        let sha = Checksum::Sha256("").digest(&bytes);
        let base = serve(vec![("/tiny-0000.pth", 200, bytes)]);
        Some((
            python,
            base,
            Checksum::Sha256Prefix(leak(sha[..8].to_string())),
        ))
    }

    #[test]
    fn vgg19_has_32_feature_tensors_with_20_024_384_parameters() {
        let f = vgg19_features();
        assert_eq!(f.len(), 32);
        assert_eq!(f.last().unwrap().0, "features.34.bias");
        let params: u64 = f.iter().map(|(_, s)| s.iter().product::<u64>()).sum();
        assert_eq!(params, 20_024_384); // Keras: vgg19 (Functional) 20,024,384
    }

    #[test]
    fn downloads_converts_and_checks_a_state_dict() {
        let Some((python, base, checksum)) =
            serve_tiny_pth("downloads_converts_and_checks_a_state_dict")
        else {
            return;
        };
        let spec = tiny_spec(checksum);
        let dir = tempfile::tempdir().unwrap();
        let out = fetch_weights(&spec, Some(&base), dir.path(), &python).unwrap();
        let header = read_header(&out).unwrap();
        assert_eq!(
            header["features.0.weight"]["shape"],
            serde_json::json!([2, 3, 3, 3])
        );
        assert_eq!(header["classifier.0.weight"]["dtype"], "F32");
        // The values survive: features.0.bias is [0.5, -0.5] as little-endian f32.
        let file = std::fs::read(&out).unwrap();
        let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        let [b, e] = [0, 1].map(|i| {
            header["features.0.bias"]["data_offsets"][i]
                .as_u64()
                .unwrap() as usize
        });
        let data = &file[8 + n + b..8 + n + e];
        assert_eq!(
            data,
            [0.5f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
        assert!(!dir.path().join("tiny.safetensors.partial").exists());
        // Converted once: a second fetch needs neither server nor Python.
        fetch_weights(
            &spec,
            Some("http://127.0.0.1:9"),
            dir.path(),
            Path::new("/nonexistent"),
        )
        .unwrap();
    }

    #[test]
    fn weights_of_another_architecture_leave_no_converted_file() {
        let Some((python, base, checksum)) =
            serve_tiny_pth("weights_of_another_architecture_leave_no_converted_file")
        else {
            return;
        };
        let mut spec = spec("vgg19").unwrap();
        spec.file = "tiny-0000.pth";
        spec.checksum = checksum;
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_weights(&spec, Some(&base), dir.path(), &python).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("features.0.weight") && msg.contains("[64, 3, 3, 3]"),
            "{msg}"
        );
        assert!(!dir.path().join("vgg19.safetensors").exists());
        assert!(!dir.path().join("vgg19.safetensors.partial").exists());
    }

    #[test]
    fn wrong_hash_prefix_is_refused() {
        let base = serve(vec![(
            "/vgg19-dcbb9e9d.pth",
            200,
            b"not the weights".to_vec(),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_weights(
            &spec("vgg19").unwrap(),
            Some(&base),
            dir.path(),
            Path::new("/x"),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("sha256 prefix mismatch") && msg.contains("dcbb9e9d"),
            "{msg}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn lying_safetensors_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, u64::MAX.to_le_bytes()).unwrap();
        assert!(format!("{:#}", read_header(&p).unwrap_err()).contains("exceeds the file"));
        let head = br#"{"features.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#;
        let mut bytes = (head.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(&p, bytes).unwrap();
        assert!(format!("{:#}", read_header(&p).unwrap_err()).contains("past the data"));
    }
}

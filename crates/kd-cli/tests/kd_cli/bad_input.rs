//! The bad-input catalogue: every kind of file kd reads — IDX and CIFAR data, safetensors
//! models and checkpoints, TOML configs, images — broken in the ways files break in
//! practice (empty, truncated at each field, wrong magic, lying headers, out-of-range
//! values, another architecture's weights). Each must end `kd-cli` with exit status 1 and a
//! one-line message naming the file (or key) and the problem: no panic, no hang, and no
//! output left behind. (Downloads and archives are catalogued in `xtask`'s own tests.)

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{idx, kd_cli, run_ok, workspace_with, TINY_CONFIG};

/// One broken input: `break_it` damages a fresh tiny workspace (data, config and, for model
/// cases, a finished run in `out/`), then `kd-cli args` must fail naming `expect`.
struct Case {
    name: &'static str,
    break_it: fn(&Path),
    args: &'static [&'static str],
    /// Every one of these must appear in the error message.
    expect: &'static [&'static str],
}

/// Every file under `dir`, relative.
fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

/// Runs every case in its own workspace (with a finished tiny run when `trained`); returns
/// the failures, described.
fn check(cases: &[Case], trained: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let (dir, _) = workspace_with(TINY_CONFIG);
        if trained {
            run_ok(dir.path(), "run.toml", "out");
        }
        (case.break_it)(dir.path());
        let before = listing(dir.path());
        let started = Instant::now();
        let out = kd_cli(case.args, dir.path());
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let after = listing(dir.path());
        let mut problems = Vec::new();
        if out.status.code() != Some(1) {
            problems.push(format!("exit status {:?}, expected 1", out.status.code()));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        for want in case.expect {
            if !stderr.contains(want) {
                problems.push(format!("message lacks {want:?}"));
            }
        }
        if stderr.trim().lines().count() != 1 {
            problems.push("message is not one line".into());
        }
        // A run may create its directory and write config.toml before it reads data; nothing
        // else may appear.
        let new: Vec<_> = after
            .difference(&before)
            .filter(|p| {
                !p.ends_with("config.toml")
                    && !p.ends_with("train.log")
                    && p.parent() != Some(Path::new(""))
            })
            .collect();
        if !new.is_empty() {
            problems.push(format!("left {new:?} behind"));
        }
        if elapsed > Duration::from_secs(60) {
            problems.push(format!("took {elapsed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} — stderr: {}",
                case.name,
                problems.join("; "),
                stderr.trim()
            ));
        }
    }
    failures
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    std::fs::write(dir.join(rel), bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const TRAIN_IMAGES: &str = "data/train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "data/train-labels-idx1-ubyte";
const RUN: &[&str] = &["run", "run.toml", "--out", "out"];

/// IDX files whose header or elements are wrong.
#[test]
fn idx_files_with_broken_headers_and_elements() {
    let cases = [
        Case {
            name: "empty images file",
            break_it: |d| write(d, TRAIN_IMAGES, b""),
            args: RUN,
            expect: &["train-images-idx3-ubyte", "expected a 4-byte magic number"],
        },
        Case {
            name: "truncated in the dimensions",
            break_it: |d| write(d, TRAIN_IMAGES, &[0, 0, 8, 3, 0, 0, 0, 240, 0, 0]),
            args: RUN,
            expect: &["train-images-idx3-ubyte", "truncated IDX file"],
        },
        Case {
            name: "truncated in the pixels",
            break_it: |d| write(d, TRAIN_IMAGES, &idx(&[240, 12, 12], &[7; 1000])[..1016]),
            args: RUN,
            expect: &[
                "train-images-idx3-ubyte",
                "truncated IDX file",
                "found 1000",
            ],
        },
        Case {
            name: "wrong magic",
            break_it: |d| write(d, TRAIN_IMAGES, b"\x89PNG\r\n\x1a\n0000"),
            args: RUN,
            expect: &[
                "train-images-idx3-ubyte",
                "not an IDX file",
                "two zero bytes",
            ],
        },
        Case {
            name: "float elements",
            break_it: |d| write(d, TRAIN_IMAGES, &[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
            args: RUN,
            expect: &[
                "train-images-idx3-ubyte",
                "element type 0x0d is not supported",
            ],
        },
        Case {
            name: "images with two dimensions",
            break_it: |d| write(d, TRAIN_IMAGES, &idx(&[240, 144], &vec![1; 240 * 144])),
            args: RUN,
            expect: &["train-images-idx3-ubyte", "2 dimensions"],
        },
    ];
    let failures = check(&cases, false);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// IDX files whose labels, lengths or compression do not add up.
#[test]
fn idx_files_that_disagree_or_overflow() {
    let cases = [
        Case {
            name: "label out of range",
            break_it: |d| {
                let mut labels = vec![1u8; 240];
                labels[17] = 200;
                write(d, TRAIN_LABELS, &idx(&[240], &labels));
            },
            args: RUN,
            expect: &[
                "train-labels-idx1-ubyte",
                "label 200 at index 17 is out of range",
            ],
        },
        Case {
            name: "fewer labels than images",
            break_it: |d| write(d, TRAIN_LABELS, &idx(&[239], &[1; 239])),
            args: RUN,
            expect: &["train-labels-idx1-ubyte", "239"],
        },
        Case {
            name: "trailing bytes",
            break_it: |d| {
                let mut bytes = idx(&[240], &[1; 240]);
                bytes.extend_from_slice(b"extra");
                write(d, TRAIN_LABELS, &bytes);
            },
            args: RUN,
            expect: &["train-labels-idx1-ubyte", "trailing data"],
        },
        Case {
            name: "gzip magic, not gzip",
            break_it: |d| write(d, TRAIN_IMAGES, b"\x1f\x8bthis is not deflate at all"),
            args: RUN,
            expect: &["train-images-idx3-ubyte", "cannot read"],
        },
        Case {
            name: "a header declaring 4 billion images",
            break_it: |d| {
                write(
                    d,
                    TRAIN_IMAGES,
                    &[
                        0, 0, 8, 3, 255, 255, 255, 255, 0, 0, 0, 12, 0, 0, 0, 12, 1, 2,
                    ],
                )
            },
            args: RUN,
            expect: &[
                "train-images-idx3-ubyte",
                "truncated IDX file",
                "expected 618475290480",
            ],
        },
        Case {
            name: "gzip inflating past its declared size",
            break_it: |d| {
                // One label declared, 64 MiB of zeros after it: read no further than 2 bytes.
                let mut bytes = idx(&[1], &[0]);
                bytes.resize(bytes.len() + (64 << 20), 0);
                write(d, TRAIN_LABELS, &gzip(&bytes));
            },
            args: RUN,
            expect: &["train-labels-idx1-ubyte", "trailing data"],
        },
    ];
    let failures = check(&cases, false);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A CIFAR-10 directory of 2 images per file, with `damage` applied to the workspace.
fn cifar_workspace(d: &Path) {
    let config = TINY_CONFIG.replace("[data]\n", "[data]\ndataset = \"cifar10\"\n");
    write(d, "run.toml", config.as_bytes());
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(9u8, 3072));
        r
    };
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        write(d, &format!("data/{name}"), &[record(1), record(2)].concat());
    }
}

#[test]
fn cifar_files() {
    let cases = [
        Case {
            name: "empty batch",
            break_it: |d| {
                cifar_workspace(d);
                write(d, "data/data_batch_3.bin", b"");
            },
            args: RUN,
            expect: &["data_batch_3.bin", "3073-byte CIFAR records", "0 bytes"],
        },
        Case {
            name: "truncated record",
            break_it: |d| {
                cifar_workspace(d);
                write(d, "data/test_batch.bin", &[1; 3073 + 100]);
            },
            args: RUN,
            expect: &["test_batch.bin", "1 records and 100 bytes left over"],
        },
        Case {
            name: "label out of range",
            break_it: |d| {
                cifar_workspace(d);
                let mut bytes = vec![4u8; 2 * 3073];
                bytes[3073] = 10;
                write(d, "data/data_batch_1.bin", &bytes);
            },
            args: RUN,
            expect: &[
                "data_batch_1.bin",
                "label 10 at index 1 is out of range (expected 0..10)",
            ],
        },
        Case {
            name: "missing batch",
            break_it: |d| {
                cifar_workspace(d);
                std::fs::remove_file(d.join("data/data_batch_4.bin")).unwrap();
            },
            args: RUN,
            expect: &[
                "data_batch_4.bin does not exist",
                "cargo xtask fetch-data --dataset cifar10",
            ],
        },
    ];
    let failures = check(&cases, false);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The bytes of the finished run's `out/<name>`.
fn read(d: &Path, name: &str) -> Vec<u8> {
    std::fs::read(d.join("out").join(name)).unwrap()
}

/// Splits a safetensors file into its header JSON and its data.
fn header(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

/// A safetensors file from a header and data.
fn assemble(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}

/// `out/distilled.safetensors` with `edit` applied to its header, written as `bad.safetensors`.
fn edit_header(d: &Path, edit: fn(&mut serde_json::Value)) {
    let (mut h, data) = header(&read(d, "distilled.safetensors"));
    edit(&mut h);
    write(d, "bad.safetensors", &assemble(&h, &data));
}

const EVAL: &[&str] = &[
    "eval",
    "bad.safetensors",
    "--data",
    "data",
    "--device",
    "cpu",
];

/// Model files that are not whole safetensors files.
#[test]
fn safetensors_files_that_are_not_whole() {
    let cases = [
        Case {
            name: "empty",
            break_it: |d| write(d, "bad.safetensors", b""),
            args: EVAL,
            expect: &["bad.safetensors", "not a safetensors file"],
        },
        Case {
            name: "truncated in the data",
            break_it: |d| {
                let bytes = read(d, "distilled.safetensors");
                write(d, "bad.safetensors", &bytes[..bytes.len() - 100]);
            },
            args: EVAL,
            expect: &["bad.safetensors", "not a valid safetensors file"],
        },
        Case {
            name: "truncated in the header",
            break_it: |d| {
                write(
                    d,
                    "bad.safetensors",
                    &read(d, "distilled.safetensors")[..40],
                )
            },
            args: EVAL,
            expect: &["bad.safetensors", "longer than the file"],
        },
        Case {
            name: "header length of 2^60 bytes",
            break_it: |d| {
                let mut bytes = read(d, "distilled.safetensors");
                bytes[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
                write(d, "bad.safetensors", &bytes);
            },
            args: EVAL,
            expect: &["bad.safetensors", "longer than the file"],
        },
        Case {
            name: "header is not JSON",
            break_it: |d| write(d, "bad.safetensors", b"\x08\0\0\0\0\0\0\0not json"),
            args: EVAL,
            expect: &["bad.safetensors", "header is not JSON"],
        },
        Case {
            name: "offsets that overlap",
            break_it: |d| {
                edit_header(d, |h| {
                    let map = h.as_object_mut().unwrap();
                    let name = map.keys().find(|k| *k != "__metadata__").unwrap().clone();
                    map[&name]["data_offsets"][0] = 4.into();
                })
            },
            args: EVAL,
            expect: &["bad.safetensors", "InvalidOffset"],
        },
    ];
    let failures = check(&cases, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Whole safetensors files that are not the model's: its tensors or its metadata.
#[test]
fn safetensors_files_with_the_wrong_contents() {
    let cases = [
        Case {
            name: "wrong dtype",
            break_it: |d| {
                edit_header(d, |h| {
                    // Same byte count: a float32 tensor relabelled as int32.
                    for (name, t) in h.as_object_mut().unwrap() {
                        if name != "__metadata__" && t["dtype"] == "F32" {
                            t["dtype"] = "I32".into();
                            break;
                        }
                    }
                })
            },
            args: EVAL,
            expect: &["bad.safetensors", "is Int, the model's is Float"],
        },
        Case {
            name: "missing tensor",
            break_it: |d| {
                // The tensor stored last: dropping it and its bytes keeps the offsets valid.
                let (mut h, data) = header(&read(d, "distilled.safetensors"));
                let map = h.as_object_mut().unwrap();
                let (name, start) = map
                    .iter()
                    .filter(|(k, _)| *k != "__metadata__")
                    .map(|(k, t)| (k.clone(), t["data_offsets"][0].as_u64().unwrap() as usize))
                    .max_by_key(|(_, start)| *start)
                    .unwrap();
                map.remove(&name);
                write(d, "bad.safetensors", &assemble(&h, &data[..start]));
            },
            args: EVAL,
            expect: &["bad.safetensors", "no tensor \""],
        },
        Case {
            name: "another architecture's weights",
            break_it: |d| {
                let meta = kd_models::metadata::read_metadata(&d.join("out/distilled.safetensors"))
                    .unwrap();
                let teacher = read(d, "teacher.safetensors");
                let forged =
                    kd_models::metadata::with_metadata(Path::new("x"), &teacher, &meta).unwrap();
                write(d, "bad.safetensors", &forged);
            },
            args: EVAL,
            expect: &["bad.safetensors", "no tensor", "student"],
        },
        Case {
            name: "no kd metadata",
            break_it: |d| {
                edit_header(d, |h| {
                    h.as_object_mut().unwrap().remove("__metadata__");
                })
            },
            args: EVAL,
            expect: &["bad.safetensors", "without kd's model metadata"],
        },
        Case {
            name: "metadata that is not kd's",
            break_it: |d| {
                edit_header(d, |h| {
                    h["__metadata__"]["kd.model"] = "{\"kind\": \"mlp\"}".into()
                })
            },
            args: EVAL,
            expect: &[
                "bad.safetensors",
                "metadata kd.model",
                "is not what kd wrote",
            ],
        },
    ];
    let failures = check(&cases, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Checkpoints a resume cannot use.
#[test]
fn checkpoints_that_are_not_checkpoints() {
    let cases = [
        Case {
            name: "a checkpoint that is not a checkpoint",
            break_it: |d| {
                let junk = read(d, "distilled.safetensors");
                write(d, "out/checkpoints/scratch/last.safetensors", &junk);
            },
            args: &["run", "run.toml", "--resume", "out"],
            expect: &["scratch/last.safetensors", "not a kd checkpoint"],
        },
        Case {
            name: "a truncated checkpoint",
            break_it: |d| {
                let path = d.join("out/checkpoints/teacher/last.safetensors");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            },
            args: &["run", "run.toml", "--resume", "out"],
            expect: &["teacher/last.safetensors", "not a valid safetensors file"],
        },
    ];
    let failures = check(&cases, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Writes `run.toml` as the tiny config with `from` replaced by `to`.
fn config(d: &Path, from: &str, to: &str) {
    write(d, "run.toml", TINY_CONFIG.replace(from, to).as_bytes());
}

#[test]
fn toml_configs() {
    let cases = [
        Case {
            name: "syntax error",
            break_it: |d| config(d, "seed = 3", "seed = = 3"),
            args: RUN,
            expect: &["run.toml", "line 3: seed: ", "; expected"],
        },
        Case {
            name: "unknown key",
            break_it: |d| config(d, "seed = 3", "seed = 3\nsede = 4"),
            args: RUN,
            expect: &["run.toml", "unknown field `sede`"],
        },
        Case {
            name: "wrong type",
            break_it: |d| config(d, "epochs = 3", "epochs = \"three\""),
            args: RUN,
            expect: &["run.toml", "line 15: teacher.train.epochs: invalid type"],
        },
        Case {
            name: "out-of-range value",
            break_it: |d| {
                config(
                    d,
                    "lr = 0.01\n[student.model]",
                    "lr = -1.0\n[student.model]",
                )
            },
            args: RUN,
            expect: &["run.toml", "teacher.train.lr", "a finite value > 0"],
        },
        Case {
            name: "unknown value of an enumeration",
            break_it: |d| config(d, "kind = \"cnn\"", "kind = \"transformer\""),
            args: RUN,
            expect: &["run.toml", "transformer"],
        },
        Case {
            name: "an override of a key that does not exist",
            break_it: |_| {},
            args: &[
                "run",
                "run.toml",
                "--out",
                "out",
                "--set",
                "student.train.lrate=1",
            ],
            expect: &["--set student.train.lrate=1", "lrate"],
        },
        Case {
            name: "not UTF-8",
            break_it: |d| write(d, "run.toml", b"name = \"\xff\xfe\"\n"),
            args: RUN,
            expect: &["run.toml"],
        },
    ];
    let failures = check(&cases, false);
    assert!(failures.is_empty(), "{failures:#?}");
}

const PREDICT: &[&str] = &[
    "predict",
    "out/distilled.safetensors",
    "bad.png",
    "--device",
    "cpu",
];

#[test]
fn images() {
    let cases = [
        Case {
            name: "text named .png",
            break_it: |d| write(d, "bad.png", b"this is not an image"),
            args: PREDICT,
            expect: &["bad.png"],
        },
        Case {
            name: "empty image",
            break_it: |d| write(d, "bad.png", b""),
            args: PREDICT,
            expect: &["bad.png"],
        },
        Case {
            name: "truncated PNG",
            break_it: |d| {
                let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x00\0\0\0";
                write(d, "bad.png", png);
            },
            args: PREDICT,
            expect: &["bad.png"],
        },
        Case {
            name: "a PNG claiming 100000x100000 pixels",
            break_it: |d| {
                let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
                png.extend_from_slice(&100_000u32.to_be_bytes());
                png.extend_from_slice(&100_000u32.to_be_bytes());
                png.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
                write(d, "bad.png", &png);
            },
            args: PREDICT,
            expect: &["bad.png"],
        },
    ];
    let failures = check(&cases, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_catalogue_covers_at_least_thirty_cases() {
    // Counted from this file's sources, so the count cannot drift from the cases.
    let source = include_str!("bad_input.rs");
    let cases = source.matches("        Case {\n            name:").count();
    assert!(cases >= 30, "{cases} cases");
}

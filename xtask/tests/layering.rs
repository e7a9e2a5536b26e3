//! The layering docs/architecture.md promises, checked on the sources: within each crate no
//! file imports a file that imports it back (`crate::` and `super::` paths outside comments
//! and test modules), and the loss layer (kd-core) and the model layer (kd-models) depend on
//! no data crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` and `main.rs` the root.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib" && p != "main")
        .collect();
    parts.join("::")
}

/// The modules of `src` that `text` (the file of `module`) names through `crate::` or
/// `super::`, code only: comments and the `#[cfg(test)] mod tests` block left out.
fn imports(text: &str, module: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_string())] {
            for (at, _) in line.match_indices(prefix) {
                let rest = &line[at + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let path = if base.is_empty() {
                    name
                } else {
                    format!("{base}::{name}")
                };
                if modules.contains(&path) && path != module {
                    found.insert(path);
                }
            }
        }
    }
    found
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut cycles = Vec::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    crates.push(workspace().join("xtask/src"));
    for src in crates {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
        let graph: BTreeMap<String, BTreeSet<String>> = files
            .iter()
            .map(|f| {
                let module = module_of(&src, f);
                let text = std::fs::read_to_string(f).unwrap();
                let found = imports(&text, &module, &modules);
                (module, found)
            })
            .collect();
        for (a, targets) in &graph {
            for b in targets.iter().filter(|b| a < *b) {
                if graph[b].contains(a) {
                    cycles.push(format!("{}: {a} <-> {b}", src.display()));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other: {cycles:#?}"
    );
}

#[test]
fn the_loss_and_model_layers_depend_on_no_data_crate() {
    for krate in ["kd-core", "kd-models", "kd-sys"] {
        let manifest = workspace().join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let deps = text
            .split("[dependencies]")
            .nth(1)
            .and_then(|s| s.split("\n[").next())
            .unwrap_or("");
        assert!(
            !deps.contains("kd-data"),
            "{} depends on kd-data",
            manifest.display()
        );
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    // Two files naming each other, as the check reads them.
    let modules: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert!(imports("use crate::b::X;\n", "a", &modules).contains("b"));
    assert!(imports("// crate::b in a comment\n", "a", &modules).is_empty());
    let nested: BTreeSet<String> = ["run", "run::x", "run::y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(imports("use super::y::Z;\n", "run::x", &nested).contains("run::y"));
}

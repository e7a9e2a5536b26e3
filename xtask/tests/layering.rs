//! The layering docs/architecture.md promises, checked on the sources: within each crate no
//! file imports itself back through a chain of other files (an import circle of any length),
//! and the loss layer (kd-core) and the model layer (kd-models) depend on no data crate.
//!
//! What counts as an import of file B by file A: a path in A's code (comments and the
//! `#[cfg(test)] mod tests` block left out) that starts with `crate::`, `super::` or `self::`
//! and names B's module, braces (`use crate::{a::X, b::{Y, Z}}`) and re-exports (`crate::X`
//! where the root says `pub use a::X`) followed to the file that defines the item. A parent
//! declaring and re-exporting its children (`mod a; pub use a::X;`) is the module tree, not
//! an import.

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

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` and `main.rs` the root (`""`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib" && p != "main")
        .collect();
    parts.join("::")
}

/// The code of a file: line comments and the unit-test module removed.
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines()
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a use tree starting at `chars[at]`, each a list of segments after `prefix`:
/// `a::b`, `a::{b, c::d}`, `{a, b}`, `a as x`, `*`.
fn use_tree(chars: &[char], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_space = |at: &mut usize| {
        while *at < chars.len() && chars[*at].is_whitespace() {
            *at += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_space(at);
        if *at < chars.len() && chars[*at] == '{' {
            *at += 1;
            loop {
                use_tree(chars, at, path.clone(), out);
                skip_space(at);
                match chars.get(*at) {
                    Some(',') => *at += 1,
                    Some('}') => {
                        *at += 1;
                        return;
                    }
                    _ => return,
                }
                skip_space(at);
                if chars.get(*at) == Some(&'}') {
                    *at += 1;
                    return;
                }
            }
        }
        let start = *at;
        while *at < chars.len() && is_ident(chars[*at]) {
            *at += 1;
        }
        if *at > start {
            path.push(chars[start..*at].iter().collect());
        }
        if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
            *at += 2;
            continue;
        }
        out.push(path);
        return;
    }
}

/// The module a path of `segments` (relative to module `base`) names: the deepest module it
/// walks through, with re-exports (`reexports[(module, item)]`) followed.
fn resolve(
    base: &str,
    segments: &[String],
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<(String, String), String>,
) -> Option<String> {
    let mut at = base.to_string();
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    for seg in segments {
        let child = if at.is_empty() {
            seg.clone()
        } else {
            format!("{at}::{seg}")
        };
        if seg == "super" {
            at = parent(&at);
        } else if seg == "self" {
        } else if modules.contains(&child) {
            at = child;
        } else if let Some(target) = reexports.get(&(at.clone(), seg.clone())) {
            return Some(target.clone());
        } else {
            break;
        }
    }
    modules.contains(&at).then_some(at)
}

/// Every `crate::`/`super::`/`self::` path in `code` (of `module`), as (base module, segments).
/// A path inside a braced tree already read (`use super::{a, super::b}`) is part of it.
fn paths(code: &str, module: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut starts: Vec<(usize, &str, &str)> = Vec::new();
    for (word, base) in [("crate", ""), ("super", parent), ("self", module)] {
        for (byte, _) in code.match_indices(&format!("{word}::")) {
            starts.push((code[..byte].chars().count(), word, base));
        }
    }
    starts.sort();
    let mut out = Vec::new();
    let mut read_up_to = 0;
    for (at, word, base) in starts {
        let glued = at > 0 && (is_ident(chars[at - 1]) || matches!(chars[at - 1], '$' | ':'));
        if glued || at < read_up_to {
            continue;
        }
        let mut pos = at + word.len() + 2;
        let mut found = Vec::new();
        use_tree(&chars, &mut pos, Vec::new(), &mut found);
        read_up_to = pos;
        out.extend(found.into_iter().map(|p| (base.to_string(), p)));
    }
    out
}

/// `pub use child::...` lines of `module`: (module, item name) -> the child module that
/// defines (or further re-exports) it.
fn reexports_of(code: &str, module: &str, out: &mut BTreeMap<(String, String), String>) {
    let chars: Vec<char> = code.chars().collect();
    for (byte, _) in code.match_indices("pub use ") {
        let mut pos = code[..byte].chars().count() + "pub use ".len();
        let mut found = Vec::new();
        use_tree(&chars, &mut pos, Vec::new(), &mut found);
        for path in found {
            let rel: Vec<&String> = path.iter().filter(|s| *s != "self").collect();
            if let ([first, .., _], Some(last)) = (rel.as_slice(), rel.last()) {
                if ["crate", "super"].contains(&first.as_str()) {
                    continue;
                }
                let child = if module.is_empty() {
                    first.to_string()
                } else {
                    format!("{module}::{first}")
                };
                out.insert((module.to_string(), last.to_string()), child);
            }
        }
    }
}

/// Whether `inner` is `outer` or one of its descendants (every module is within the root).
fn is_within(inner: &str, outer: &str) -> bool {
    outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}::"))
}

/// The import graph of `files` (path, text) under `src`: module -> modules it imports.
fn graph(src: &Path, files: &[(PathBuf, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = files.iter().map(|(f, _)| module_of(src, f)).collect();
    let codes: Vec<(String, String)> = files
        .iter()
        .map(|(f, text)| (module_of(src, f), code_of(text)))
        .collect();
    let mut reexports = BTreeMap::new();
    for (module, code) in &codes {
        reexports_of(code, module, &mut reexports);
    }
    // A re-export of a re-export: follow it to the module that defines the item.
    for _ in 0..4 {
        let snapshot = reexports.clone();
        for ((_, item), target) in reexports.iter_mut() {
            if let Some(deeper) = snapshot.get(&(target.clone(), item.clone())) {
                *target = deeper.clone();
            }
        }
    }
    codes
        .iter()
        .map(|(module, code)| {
            let imported = paths(code, module)
                .iter()
                .filter_map(|(base, segs)| resolve(base, segs, &modules, &reexports))
                .filter(|m| m != module && !is_within(m, module))
                .collect();
            (module.clone(), imported)
        })
        .collect()
}

/// The import circles of `graph`: one list of modules per strongly connected component of
/// more than one module (Tarjan's algorithm), each in the order of one circle through them.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let names: Vec<&String> = graph.keys().collect();
    let index_of: BTreeMap<&String, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            graph[*n]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let mut tarjan = Tarjan {
        edges: &edges,
        index: vec![None; names.len()],
        low: vec![0; names.len()],
        stack: Vec::new(),
        on_stack: vec![false; names.len()],
        next: 0,
        components: Vec::new(),
    };
    for v in 0..names.len() {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            circle_through(&edges, &c)
                .into_iter()
                .map(|i| names[i].clone())
                .collect()
        })
        .collect()
}

struct Tarjan<'a> {
    edges: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    stack: Vec<usize>,
    on_stack: Vec<bool>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.edges[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// One circle inside a strongly connected `component`: a breadth-first path from its first
/// module back to itself.
fn circle_through(edges: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let start = component[0];
    let mut came_from = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in edges[v].iter().filter(|w| component.contains(w)) {
            if w == start {
                let mut path = vec![v];
                while let Some(&p) = came_from.get(path.last().unwrap()) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    component.to_vec()
}

fn read_crate(src: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn no_files_import_each_other_in_a_circle_of_any_length() {
    let mut found = Vec::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    crates.push(workspace().join("xtask/src"));
    crates.sort();
    for src in crates {
        for circle in circles(&graph(&src, &read_crate(&src))) {
            let crate_dir = src.parent().unwrap().file_name().unwrap().to_string_lossy();
            found.push(format!("{crate_dir}: {} -> (back)", circle.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "import circles: {found:#?}");
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

/// The kd crates `manifest`'s `[dependencies]` names.
fn kd_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let deps = text
        .split("\n[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    deps.lines()
        .filter_map(|l| l.split(['.', ' ', '=']).next())
        .filter(|name| name.starts_with("kd-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_architecture_map_names_each_crates_dependencies() {
    let doc = std::fs::read_to_string(workspace().join("docs/architecture.md")).unwrap();
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let name = cells[0].trim().trim_matches('`');
        let dir = if name == "xtask" {
            workspace().join("xtask")
        } else {
            workspace().join("crates").join(name)
        };
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        rows += 1;
        let claimed: BTreeSet<String> = cells
            .last()
            .unwrap()
            .split(", ")
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| c.starts_with("kd-"))
            .collect();
        assert_eq!(
            claimed,
            kd_dependencies(&dir.join("Cargo.toml")),
            "docs/architecture.md's row for {name}"
        );
    }
    let crates = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .count();
    assert_eq!(
        rows,
        crates + 1,
        "a crate is missing from docs/architecture.md's table"
    );
}

/// Files of a planted crate: (path under `src/`, text).
fn planted(files: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new("/planted/src");
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (src.join(p), t.to_string()))
        .collect();
    graph(src, &files)
}

#[test]
fn the_checker_finds_a_planted_three_file_circle() {
    let g = planted(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Gamma;\n"),
        ("a.rs", "use crate::{\n    b::{Beta, other},\n};\n"),
        (
            "b.rs",
            "// crate::a in a comment is no import\nfn f() { crate::Gamma::new(); }\n",
        ),
        (
            "c.rs",
            "pub struct Gamma;\nfn g() -> super::a::Alpha { todo!() }\n",
        ),
    ]);
    let found = circles(&g);
    assert_eq!(found.len(), 1, "{g:?}");
    let members: BTreeSet<&str> = found[0].iter().map(String::as_str).collect();
    assert_eq!(members, BTreeSet::from(["a", "b", "c"]));
    // Break one link and the circle is gone.
    let g = planted(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Gamma;\n"),
        ("a.rs", "use crate::b::Beta;\n"),
        ("b.rs", "fn f() { crate::Gamma::new(); }\n"),
        (
            "c.rs",
            "pub struct Gamma;\n#[cfg(test)]\nmod tests {\n    use crate::a::Alpha;\n}\n",
        ),
    ]);
    assert!(circles(&g).is_empty(), "{g:?}");
}

#[test]
fn nested_modules_resolve_through_super_and_self() {
    let g = planted(&[
        ("lib.rs", "pub mod run;\n"),
        ("run/mod.rs", "mod x;\nmod y;\npub use x::X;\n"),
        ("run/x.rs", "use super::y::Z;\n"),
        ("run/y.rs", "use super::{X, super::run::x};\n"),
    ]);
    assert_eq!(g["run::x"], BTreeSet::from(["run::y".to_string()]));
    assert_eq!(g["run::y"], BTreeSet::from(["run::x".to_string()]));
    assert!(
        g["run"].is_empty(),
        "a parent's re-exports are no import: {g:?}"
    );
    assert_eq!(circles(&g).len(), 1);
}

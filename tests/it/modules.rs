//! Every `.rs` file under `tests/it/` is compiled into this binary. Cargo builds only
//! `tests/it/main.rs` and what it declares, so a test file nobody added as `mod x;` is never
//! built and its tests never run, silently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The names of the `mod x;` lines of a module file (`mod x { … }` is inline, not a file).
fn declared(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = match line.strip_prefix("pub") {
                Some(rest) if rest.starts_with('(') => rest.split_once(')')?.1.trim_start(),
                Some(rest) => rest.trim_start(),
                None => line,
            };
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?.trim();
            name.chars()
                .all(|c| c.is_alphanumeric() || c == '_')
                .then(|| name.to_string())
        })
        .collect()
}

/// The files under `dir` that `parent` (the module file whose children live in `dir`) does not
/// declare, recursing into the child modules that are folders (`x/mod.rs`, or `x.rs` beside
/// `x/`).
fn undeclared(dir: &Path, parent: &Path, out: &mut Vec<String>) {
    let mods = declared(parent);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let shown = |path: &Path| {
        path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path)
            .display()
            .to_string()
    };
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let (mod_rs, beside) = (path.join("mod.rs"), path.with_extension("rs"));
            if mod_rs.is_file() {
                if !mods.contains(&name) {
                    out.push(format!(
                        "{} is not a module of {}: add `mod {name};` there",
                        shown(&mod_rs),
                        shown(parent)
                    ));
                }
                undeclared(&path, &mod_rs, out);
            } else if beside.is_file() {
                // `x.rs` is checked as a file of `dir`; its children are in `x/`.
                undeclared(&path, &beside, out);
            } else {
                // A folder of `.rs` files that no module owns (not `snapshots/`, which holds none).
                let mut orphans: Vec<String> = std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                    .map(|p| shown(&p))
                    .collect();
                orphans.sort();
                for orphan in orphans {
                    out.push(format!(
                        "{orphan} is in a folder without mod.rs, so no module declares it"
                    ));
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path != parent
            && name != "mod"
            && !mods.contains(&name)
        {
            out.push(format!(
                "{} is not a module of {}: add `mod {name};` there",
                shown(&path),
                shown(parent)
            ));
        }
    }
}

#[test]
fn every_file_under_tests_it_is_a_module_of_the_test_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut missing = Vec::new();
    undeclared(&dir, &dir.join("main.rs"), &mut missing);
    assert!(
        missing.is_empty(),
        "never compiled, so their tests never run:\n{}",
        missing.join("\n")
    );
}

#[test]
fn declarations_are_read_from_mod_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.rs");
    std::fs::write(
        &file,
        "//! mod in_a_comment;\nmod a;\npub mod b;\npub(crate) mod c;\n  mod d;\nmod inline {}\n\
         use e;\n",
    )
    .unwrap();
    assert_eq!(
        declared(&file),
        ["a", "b", "c", "d"].map(String::from).into()
    );
}

/// The command modules of `src/cli/` that `file` uses (`super::x` outside comments).
fn cli_imports(file: &Path, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("super::") {
            let rest = &line[i + "super::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                found.insert(name);
            }
        }
        // `use super::{a, b}` names several.
        if let Some(list) = line
            .trim_start()
            .strip_prefix("use super::{")
            .and_then(|l| l.split_once('}'))
        {
            for item in list.0.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").to_string();
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// The command layer imports without a circle: commands use the shared modules, never the other
/// way round, so each can be read, tested and moved on its own.
#[test]
fn the_cli_modules_import_each_other_without_a_circle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("mod.rs"))
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let graph: std::collections::BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let mut uses = cli_imports(p, &modules);
            uses.remove(&name);
            (name, uses)
        })
        .collect();
    assert!(
        graph["gitops"].contains("checkout"),
        "the scan sees imports: {graph:?}"
    );
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            panic!(
                "src/cli imports in a circle: {} -> {node}",
                path[at..].join(" -> ")
            );
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in &graph[node] {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

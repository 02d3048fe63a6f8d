//! The layers of docs/architecture.md, held: each top-level module of `src/` refers (outside
//! its tests) only to modules below it, so dependencies point one way and there is no cycle.

use std::collections::BTreeMap;
use std::path::Path;

/// Top to bottom. A module may use those after it in this list, never those before.
const LAYERS: [&str; 14] = [
    "cli",
    "generate",
    "app",
    "report",
    "cluster",
    "engine",
    "marts",
    "journeys",
    "canonical",
    "attribution",
    "storage",
    "input",
    "calendar",
    "error",
];

/// The `crate::MODULE` references of the non-test code of every file under `dir`, by the
/// top-level module the file belongs to.
fn references(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            if is_test_module(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests sit at the end of a file.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        out.entry(top.clone())
                            .or_default()
                            .entry(name)
                            .or_insert_with(|| rel.clone());
                    }
                }
            }
        }
    }
    out
}

/// Whether `path` is a test module of its own (`#[cfg(test)] mod NAME;` in its parent).
fn is_test_module(path: &Path) -> bool {
    let stem = path.file_stem().unwrap().to_string_lossy();
    let dir = path.parent().unwrap();
    let parent = dir.join("mod.rs");
    std::fs::read_to_string(&parent)
        .is_ok_and(|text| text.contains(&format!("#[cfg(test)]\nmod {stem};")))
}

#[test]
fn dependencies_between_top_level_modules_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let refs = references(&src);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (from, to) in &refs {
        let Some(r) = rank(from) else {
            if from != "lib" && from != "main" {
                wrong.push(format!("{from} is in no layer"));
            }
            continue;
        };
        for (name, file) in to {
            match rank(name) {
                Some(t) if t > r => {}
                Some(_) => wrong.push(format!("{file}: {from} uses crate::{name}, a layer above")),
                None => wrong.push(format!("{file}: crate::{name} is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check sees something: the use cases use the layers below them.
    assert!(refs["app"].contains_key("attribution") && refs["cli"].contains_key("app"));
}

/// Small parts with one job each: no file of `src/` grows past 800 lines.
#[test]
fn no_source_file_is_over_800_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut long = Vec::new();
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
                files += 1;
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 800 {
                    long.push(format!("{}: {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(files > 50, "only {files} files found");
    assert!(long.is_empty(), "{}", long.join("\n"));
}

//! The module layers, read from the source: the leaf modules import nothing
//! of the crate, and no two top-level modules import each other, directly or
//! around a circle. Test code (`tests.rs`, what follows `#[cfg(test)]`) is
//! left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules every stage shares; they must stand on nothing of the crate.
const LEAVES: [&str; 4] = ["names", "net", "version", "wire"];

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn product_text(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// Every `crate::NAME` a text names.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            refs.extend(group.split(',').filter_map(|item| {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            }));
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            refs.insert(name);
        }
    }
    refs
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".rs") || name == "tests.rs" || name == "fake.rs" {
                continue;
            }
            let module = top_module(&src, &path);
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let refs = crate_refs(product_text(&text));
            let edges = graph.entry(module.clone()).or_default();
            edges.extend(refs.into_iter().filter(|r| *r != module));
        }
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let at = path.last().unwrap().clone();
        for next in g.get(&at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_leaf_modules_import_nothing_of_the_crate() {
    let g = graph();
    for leaf in LEAVES {
        let edges = g
            .get(leaf)
            .unwrap_or_else(|| panic!("src/{leaf}.rs exists"));
        assert!(edges.is_empty(), "{leaf} imports {edges:?}");
    }
}

#[test]
fn no_two_modules_import_each_other_around_a_circle() {
    let g = graph();
    assert!(g.len() > 10, "read the modules: {:?}", g.keys());
    assert!(
        g["lint"].contains("daemons"),
        "the reader sees imports: {g:?}"
    );
    assert_eq!(
        crate_refs("use crate::{plan::Plan, facts};"),
        BTreeSet::from(["plan".to_string(), "facts".to_string()])
    );
    for module in g.keys() {
        if let Some(circle) = circle_from(&g, module) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

//! The shape the design promises, checked: the pure rooms are a crate with no I/O dependency,
//! they never name an edge room, and no two modules import each other (directly or round a
//! circle). Reads the sources; needs nothing running.

use plugsync_test_support::workspace_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates that do I/O: none may be a normal dependency of the core.
const IO_CRATES: [&str; 8] = ["tokio", "reqwest", "hyper", "bollard", "kube", "git2", "axum", "notify"];

/// Every `.rs` file under `root` as (module path, source without comments and test modules).
fn modules(root: &Path, prefix: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under root").with_extension("");
            let mut parts: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            parts.extend(relative.iter().map(|p| p.to_string_lossy().into_owned()));
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            if parts.iter().any(|p| p.contains("test")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            out.insert(parts.join("::"), code_only(&text));
        }
    }
    out
}

/// The source without `//` comments and without a trailing `#[cfg(test)] mod …` block.
fn code_only(text: &str) -> String {
    let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect();
    let code = code.join("\n");
    match code.find("#[cfg(test)]\nmod ") {
        Some(i) => code[..i].to_string(),
        None => code,
    }
}

/// Module → the modules of the same tree it names (`crate::a::b`, `super::c`).
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (module, text) in modules {
        let here: Vec<&str> = if module.is_empty() { Vec::new() } else { module.split("::").collect() };
        let mut targets = BTreeSet::new();
        for (i, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
            let path: String =
                text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let (base, rest): (Vec<&str>, &[&str]) = match segments.first() {
                Some(&"crate") => (Vec::new(), &segments[1..]),
                _ => {
                    let ups = segments.iter().take_while(|s| **s == "super").count();
                    (here[..here.len().saturating_sub(ups)].to_vec(), &segments[ups..])
                }
            };
            for k in (1..=rest.len()).rev() {
                let candidate = base.iter().chain(&rest[..k]).copied().collect::<Vec<_>>().join("::");
                if modules.contains_key(&candidate) {
                    if candidate != *module && !module.starts_with(&format!("{candidate}::")) {
                        targets.insert(candidate);
                    }
                    break;
                }
            }
        }
        out.insert(module.clone(), targets);
    }
    out
}

/// Groups of modules that reach each other (Tarjan's strongly connected components).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.edges.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut group = Vec::new();
            while let Some(member) = s.stack.pop() {
                s.on_stack.remove(member);
                group.push(member.to_string());
                if member == node {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let root = workspace_root();
    for (name, tree) in [("plugsync", root.join("src")), ("plugsync-core", root.join("crates/core/src"))] {
        let found = circles(&edges(&modules(&tree, &[])));
        assert!(found.is_empty(), "import circles in {name}: {found:#?}");
    }
}

#[test]
fn the_pure_rooms_name_no_edge_room() {
    let core = modules(&workspace_root().join("crates/core/src"), &[]);
    for (module, text) in &core {
        for edge in
            ["plugsync::", "backend::", "source::", "status::", "alert::", "server::", "daemon::", "reconcile::"]
        {
            let named = text.match_indices(edge).any(|(i, _)| text[..i].ends_with("crate::") || edge == "plugsync::");
            assert!(!named, "core module {module} names the edge room {edge}");
        }
    }
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(workspace_root().join("crates/core/Cargo.toml")).expect("core Cargo.toml");
    let dependencies = manifest.split("[dependencies]").nth(1).expect("a [dependencies] table");
    let dependencies = dependencies.split("\n[").next().unwrap_or(dependencies);
    for line in dependencies.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = line.split(['=', ' ']).next().unwrap_or(line);
        assert!(!IO_CRATES.contains(&name), "plugsync-core depends on {name}, an I/O crate: {line}");
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let modules: BTreeMap<String, String> = [
        ("a".to_string(), "use crate::b::Thing;".to_string()),
        ("b".to_string(), "use super::c::f;".to_string()),
        ("c".to_string(), "fn g() { crate::a::h() }".to_string()),
        ("d".to_string(), "use crate::a::x;".to_string()),
    ]
    .into();
    assert_eq!(circles(&edges(&modules)), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
}

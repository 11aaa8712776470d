//! The rings of `src/` (docs/architecture.md), checked on the source itself so that the next
//! change cannot quietly break them:
//!
//! - ring 0, values with no I/O: `policy`, `pictures`, `istio`, `tutorial`, `gateway_api`,
//!   `inventory`, `problem`, `managed`; they may build on each other;
//! - ring 1, adapters: `cluster`, `audit`, `traffic`, `propagation`, `authz`, `metrics`; they
//!   import only ring 0, never each other;
//! - ring 2, use cases: `change` (the one write path), `autopilot`, `audit_anchor`; the only
//!   code that combines adapters;
//! - ring 3, `web` and `config`; ring 4, `app`, which wires everything.
//!
//! An import is a `crate::…` or `super::…` path in a file's non-test code; it points at the
//! file of the longest module prefix it names. A module's own `mod`/`pub use` of its children
//! is structure, not an import. The imports between files form no circle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const RINGS: &[(&str, u8)] = &[
    ("policy", 0),
    ("pictures", 0),
    ("istio", 0),
    ("tutorial", 0),
    ("gateway_api", 0),
    ("inventory", 0),
    ("problem", 0),
    ("managed", 0),
    ("cluster", 1),
    ("audit", 1),
    ("traffic", 1),
    ("propagation", 1),
    ("authz", 1),
    ("metrics", 1),
    ("change", 2),
    ("autopilot", 2),
    ("audit_anchor", 2),
    ("routing", 2),
    ("web", 3),
    ("config", 3),
    ("app", 4),
];

type Module = Vec<String>;

#[test]
fn the_source_tree_keeps_its_rings_and_has_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&root, &root, &mut files);
    assert!(files.len() > 50, "read the source tree: {} files", files.len());
    let problems = check(&files);
    assert!(problems.is_empty(), "the rings of src/ are broken:\n{}", problems.join("\n"));
}

#[test]
fn the_check_finds_a_circle_an_outward_import_and_a_module_without_a_ring() {
    let files: BTreeMap<Module, String> = [
        (vec!["policy".into()], "use crate::cluster::Kind;\n".to_owned()),
        (vec!["cluster".into()], "use crate::audit::AuditStore;\n".to_owned()),
        (vec!["audit".into()], "".to_owned()),
        (vec!["web".into(), "a".into()], "use super::b::X;\n".to_owned()),
        (vec!["web".into(), "b".into()], "use crate::web::{a::Y, c};\n".to_owned()),
        (vec!["nowhere".into()], "".to_owned()),
        (vec!["change".into()], "#[cfg(test)]\nmod tests {\n use crate::web::a::X;\n}\n".to_owned()),
    ]
    .into_iter()
    .collect();
    let problems = check(&files).join("\n");
    assert!(problems.contains("policy imports cluster"), "{problems}");
    assert!(problems.contains("cluster imports audit"), "{problems}");
    assert!(problems.contains("circle: web/a -> web/b -> web/a"), "{problems}");
    assert!(problems.contains("nowhere has no ring"), "{problems}");
    assert!(!problems.contains("change imports web"), "test code is not an import: {problems}");
}

fn check(files: &BTreeMap<Module, String>) -> Vec<String> {
    let rings: BTreeMap<&str, u8> = RINGS.iter().copied().collect();
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in files {
        let Some(top) = module.first() else { continue };
        let Some(&ring) = rings.get(top.as_str()) else {
            problems.push(format!("{top} has no ring: add it to RINGS and to docs/architecture.md"));
            continue;
        };
        let imported = imports(module, source, &modules);
        for target in &imported {
            let Some(target_top) = target.first().filter(|t| *t != top) else { continue };
            let target_ring = rings.get(target_top.as_str()).copied().unwrap_or(u8::MAX);
            let same_ring_allowed = ring == target_ring && (ring == 0 || ring == 2);
            if target_ring >= ring && !same_ring_allowed {
                problems.push(format!(
                    "{} imports {target_top}: ring {ring} may import only inner rings",
                    module.join("/")
                ));
            }
        }
        edges.insert(module.clone(), imported);
    }
    problems.extend(circles(&edges));
    problems.sort();
    problems.dedup();
    problems
}

/// The modules a file imports, resolved to files.
fn imports(module: &Module, source: &str, modules: &BTreeSet<Module>) -> BTreeSet<Module> {
    let path =
        regex::Regex::new(r"\b((?:crate|super)(?:::super)*)::((?:[a-z_][a-z0-9_]*::)*)(\{|[a-z_][a-z0-9_]*)").unwrap();
    let code = without_tests_and_comments(source);
    let mut found = BTreeSet::new();
    for captures in path.captures_iter(&code) {
        let head = &captures[1];
        let base: Vec<String> = if head == "crate" {
            Vec::new()
        } else {
            let up = head.matches("super").count();
            module[..module.len().saturating_sub(up)].to_vec()
        };
        let prefix = &captures[2];
        let names: Vec<String> = match &captures[3] {
            "{" => group_names(&code[captures.get(3).unwrap().end()..])
                .into_iter()
                .map(|name| format!("{prefix}{name}"))
                .collect(),
            last => vec![format!("{prefix}{last}")],
        };
        for name in names {
            let mut full = base.clone();
            full.extend(name.split("::").map(str::to_owned));
            let target = (1..=full.len()).rev().map(|n| full[..n].to_vec()).find(|m| modules.contains(m));
            if let Some(target) = target.filter(|target| target != module) {
                found.insert(target);
            }
        }
    }
    found
}

/// The paths named at the top level of a `{a, b::c, d::{e, f}}` group (`a`, `b::c`, `d`).
fn group_names(after_brace: &str) -> Vec<String> {
    let (mut depth, mut current, mut names) = (0usize, String::new(), Vec::new());
    for c in after_brace.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    names
        .iter()
        .map(|name| name.trim().trim_end_matches("::").split(" as ").next().unwrap_or_default().trim().to_owned())
        .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .collect()
}

/// The code before a file's inline `#[cfg(test)] mod … {` (test code may reach anywhere;
/// those modules close a file), without line comments.
fn without_tests_and_comments(source: &str) -> String {
    let inline_tests = regex::Regex::new(r"#\[cfg\(test\)\]\s*mod [a-z_]+ \{").unwrap();
    let code = inline_tests.split(source).next().unwrap_or_default();
    code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every circle of imports between files, each named once by its path.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut found = Vec::new();
    let mut finished = BTreeSet::new();
    for start in edges.keys() {
        let mut path = Vec::new();
        walk(start, edges, &mut path, &mut finished, &mut found);
    }
    found
}

fn walk(
    module: &Module,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    path: &mut Vec<Module>,
    finished: &mut BTreeSet<Module>,
    found: &mut Vec<String>,
) {
    if let Some(at) = path.iter().position(|m| m == module) {
        let mut names: Vec<String> = path[at..].iter().map(|m| m.join("/")).collect();
        names.push(module.join("/"));
        found.push(format!("circle: {}", names.join(" -> ")));
        return;
    }
    if finished.contains(module) {
        return;
    }
    path.push(module.clone());
    for next in edges.get(module).into_iter().flatten() {
        walk(next, edges, path, finished, found);
    }
    path.pop();
    finished.insert(module.clone());
}

/// Every `.rs` file under `src/` but the binary's `main.rs` and test-only files, by module
/// path (`web/pages/overview/mod.rs` is `web::pages::overview`).
fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(root, &path, files);
            continue;
        }
        let relative = path.strip_prefix(root).unwrap().with_extension("");
        let mut module: Module = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
        let file = module.last().cloned().unwrap_or_default();
        if path.extension().is_none_or(|ext| ext != "rs") || matches!(file.as_str(), "tests" | "proptests") {
            continue;
        }
        if module == ["main"] || module == ["lib"] {
            continue;
        }
        if file == "mod" {
            module.pop();
        }
        files.insert(module, std::fs::read_to_string(&path).unwrap());
    }
}

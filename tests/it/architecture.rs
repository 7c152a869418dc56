//! The floor plan (ARCHITECTURE.md): `src/`'s top-level modules import only downward, so
//! there is no import cycle between them and the pure core never reaches the store or the
//! edge. Read from the source text, as a newcomer would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's floor; a module may import modules on its floor or below (and
/// the cycle check keeps one floor acyclic too).
const FLOORS: &[(&str, u8)] = &[
    ("catalog", 0),
    ("clock", 0),
    ("files", 0),
    ("folders", 0),
    ("gitindex", 0),
    ("memory", 0),
    ("parallel", 0),
    ("progress", 0),
    ("unicode", 0),
    ("manifest", 1),
    ("state", 2),
    ("message", 3),
    ("passwords", 3),
    ("policy", 3),
    ("signin", 3),
    ("validate", 4),
    ("plan", 5),
    ("history", 6),
    ("render", 6),
    ("store", 7),
    ("access", 8),
    ("export", 8),
    ("github", 8),
    ("import", 8),
    ("notify", 8),
    ("report", 8),
    ("schema", 8),
    ("serve", 8),
    ("error", 9),
    ("cli", 10),
    ("commands", 11),
];

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

/// The top-level modules each top-level module names (`crate::x`, `use crate::{x, y}`),
/// outside comments.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // `build` is the build script (Cargo runs it; no module imports it).
        if name == "lib" || name == "main" || name == "build" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        let mut named = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for part in group.split(',') {
                        let word: String = part
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        named.insert(word);
                    }
                } else {
                    let word: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    named.insert(word);
                }
            }
        }
        named.remove(&name);
        named.retain(|n| !n.is_empty());
        graph.insert(name, named);
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_only_downward() {
    let graph = imports();
    let floor = |m: &str| FLOORS.iter().find(|(n, _)| *n == m).map(|(_, f)| *f);
    for module in graph.keys() {
        assert!(
            floor(module).is_some(),
            "src/{module} has no floor: add it to FLOORS here and to ARCHITECTURE.md"
        );
    }
    let mut upward = Vec::new();
    for (module, names) in &graph {
        for name in names {
            if let (Some(from), Some(to)) = (floor(module), floor(name))
                && to > from
            {
                upward.push(format!(
                    "{module} (floor {from}) imports {name} (floor {to})"
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up:\n{}",
        upward.join("\n")
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("an import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_check_sees_a_cycle_and_an_upward_import() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("plan".into(), ["store".to_string()].into());
    graph.insert("store".into(), ["plan".to_string()].into());
    assert_eq!(
        cycle_from(&graph, "plan"),
        Some(vec!["plan".into(), "store".into(), "plan".into()])
    );
    // The real graph is read: the core names the modules below it.
    let real = imports();
    assert!(real["plan"].contains("state"), "{:?}", real["plan"]);
    assert!(real["commands"].contains("store"));
}

/// The longest a function in `src/` may be, in lines from its `fn` to its closing brace
/// (comments and blank lines count): past it, a function is split into named steps.
const MAX_FUNCTION_LINES: usize = 80;

/// Each function of `text` (its name, first line and length), found as rustfmt lays code
/// out: a line starting with `fn` (after `pub`, `async`, …) whose body ends at the first
/// `}` line with the same indentation. Declarations without a body are skipped.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let mut rest = trimmed;
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let Some(signature) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = signature
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the first line ending in `{` (a body) or `;` (none).
        let Some(open) = (start..lines.len())
            .find(|&i| lines[i].trim_end().ends_with('{') || lines[i].trim_end().ends_with(';'))
        else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue;
        }
        let closing = " ".repeat(indent) + "}";
        if let Some(end) = (open + 1..lines.len()).find(|&i| {
            lines[i].starts_with(&closing) && lines[i].len() - lines[i].trim_start().len() == indent
        }) {
            found.push((name, start + 1, end - start + 1));
        }
    }
    found
}

#[test]
fn functions_stay_short_enough_to_read() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (name, line, length) in functions(&text) {
            if length > MAX_FUNCTION_LINES {
                long.push(format!(
                    "{}:{line} `{name}`: {length} lines",
                    file.display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FUNCTION_LINES} lines; split them into named steps:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_measures_functions_as_rustfmt_lays_them_out() {
    let text = "pub async fn a(\n    x: u8,\n) -> u8 {\n    x\n}\n\nfn b();\n\nimpl T {\n    pub(crate) fn c(&self) {\n        if true {\n        }\n    }\n}\n";
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 1, 5), ("c".to_string(), 10, 4)]
    );
}

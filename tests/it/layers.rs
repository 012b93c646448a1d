//! The import rule of `docs/ARCHITECTURE.md`, checked against the code: the
//! page's table gives each module of `src/` a layer; a module may import
//! from its own layer and the ones below, the queue rules and the stores
//! never name each other, and every module of `src/` is in the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layer of each module, from the table of `docs/ARCHITECTURE.md`: a row
/// `| N name | `mod` `a::b` ... | ... |` (a row named `tests` gives `None`:
/// compiled for tests only, bound by no rule).
fn layers(page: &str) -> BTreeMap<String, Option<u32>> {
    let mut out = BTreeMap::new();
    for line in page.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let layer = match cells[1].split(' ').next() {
            Some("tests") => None,
            Some(n) => match n.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => continue,
            },
            None => continue,
        };
        for m in cells[2].split('`').skip(1).step_by(2) {
            let old = out.insert(m.to_string(), layer);
            assert!(old.is_none(), "{m} is in the table twice");
        }
    }
    out
}

/// Every module of the crate under `src`, by path (`store::fs::index`), and
/// its file: `a/mod.rs` is `a`, `a/b.rs` is `a::b`; `main.rs` is `main`
/// (`lib.rs`, the crate root, is none).
fn modules_of(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![(src.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let joined = if prefix.is_empty() {
                stem.clone()
            } else {
                format!("{prefix}::{stem}")
            };
            if path.is_dir() {
                dirs.push((path, joined));
            } else if path.extension().is_some_and(|e| e == "rs") {
                match stem.as_str() {
                    "lib" if prefix.is_empty() => {}
                    "mod" => {
                        out.insert(prefix.clone(), path);
                    }
                    _ => {
                        out.insert(joined, path);
                    }
                }
            }
        }
    }
    out
}

/// The modules of the crate a file's code names (`crate::a::b::Item`,
/// `spoolmq::a`: the longest path the table knows), leaving out comments
/// and the file's unit tests (`#[cfg(test)] mod tests`).
fn imports(code: &str, modules: &BTreeMap<String, Option<u32>>) -> Vec<String> {
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    };
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for prefix in ["crate::", "spoolmq::"] {
            for (at, _) in line.match_indices(prefix) {
                let path: String = line[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let mut name = String::new();
                let mut known = None;
                for part in path.split("::").filter(|p| !p.is_empty()) {
                    if !name.is_empty() {
                        name.push_str("::");
                    }
                    name.push_str(part);
                    if modules.contains_key(&name) {
                        known = Some(name.clone());
                    }
                }
                if let Some(name) = known
                    && !found.contains(&name)
                {
                    found.push(name);
                }
            }
        }
    }
    found
}

/// A store's own code: the fs, sqlite and PostgreSQL stores and their parts.
fn is_store(module: &str) -> bool {
    ["store::fs", "store::sqlite", "store::postgres"]
        .iter()
        .any(|s| module == *s || module.starts_with(&format!("{s}::")))
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let table = layers(&page);
    assert!(
        table.len() > 20,
        "the table of docs/ARCHITECTURE.md: {table:?}"
    );
    let files = modules_of(&root.join("src"));
    let mut wrong = Vec::new();
    for (module, path) in &files {
        let Some(&layer) = table.get(module) else {
            wrong.push(format!("{} ({module}) is not in the table", path.display()));
            continue;
        };
        let Some(layer) = layer else { continue };
        let code = std::fs::read_to_string(path).unwrap();
        for used in imports(&code, &table) {
            let Some(Some(there)) = table.get(&used) else {
                wrong.push(format!("{module} (layer {layer}) uses test-only {used}"));
                continue;
            };
            if *there > layer {
                wrong.push(format!(
                    "{module} (layer {layer}) uses {used} (layer {there})"
                ));
            }
            if (module == "queue" && is_store(&used)) || (is_store(module) && used == "queue") {
                wrong.push(format!(
                    "{module} names {used}: the queue rules and the stores meet only through the Store trait"
                ));
            }
        }
    }
    for m in table.keys() {
        if !files.contains_key(m) {
            wrong.push(format!("the table names {m}, which is not in src/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/ARCHITECTURE.md's rule is broken:\n{}",
        wrong.join("\n")
    );
}

/// The check itself: a module that reaches up is caught, the longest known
/// path is the one used, and comments and unit tests are not imports.
#[test]
fn the_layer_check_sees_an_upward_import() {
    let table = layers(
        "| Layer | Modules | What |\n|---|---|---|\n| 0 basic | `error` | x |\n| 2 seam | `store` | x |\n| 3 q | `queue` `store::fs` | x |\n| tests | `simfs` | x |",
    );
    assert_eq!(table["error"], Some(0));
    assert_eq!(table["store::fs"], Some(3));
    assert_eq!(table["simfs"], None);
    let code = "use crate::queue::Queue; // crate::simfs\nuse crate::store::fs::Thing;\nuse crate::store::{Meta, Step};\n#[cfg(test)]\nmod tests { use crate::simfs; }";
    assert_eq!(imports(code, &table), ["queue", "store::fs", "store"]);
    assert!(is_store("store::fs::index") && !is_store("store") && !is_store("queue"));
}

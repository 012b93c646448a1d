//! The import rule of `docs/ARCHITECTURE.md`, checked against the code: the
//! page's table gives each module of `src/` a layer; a module may import
//! from its own layer and the ones below, the queue rules and the stores
//! never name each other, and every module of `src/` is in the table.

use std::collections::BTreeMap;
use std::path::Path;

/// The layer of each module, from the table of `docs/ARCHITECTURE.md`: a row
/// `| N name | `mod` `mod` ... | ... |` (a row named `tests` gives `None`:
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

/// The modules of the crate a file's code names (`crate::X`, `spoolmq::X`),
/// leaving out comments and its unit tests (`#[cfg(test)] mod tests`).
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
                let name: String = line[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if modules.contains_key(&name) && !found.contains(&name) {
                    found.push(name);
                }
            }
        }
    }
    found
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
    let stores = [
        "record", "segment", "index", "fsstore", "sqlstore", "pgstore",
    ];
    let mut wrong = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for path in &files {
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if module == "lib" {
            continue;
        }
        let Some(&layer) = table.get(&module) else {
            wrong.push(format!("src/{module}.rs is not in the table"));
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
            let (a, b) = (module.as_str(), used.as_str());
            if (a == "queue" && stores.contains(&b)) || (stores.contains(&a) && b == "queue") {
                wrong.push(format!("{module} names {used}: the queue rules and the stores meet only through the Store trait"));
            }
        }
    }
    for m in table.keys() {
        if !files
            .iter()
            .any(|p| p.file_stem().is_some_and(|s| s == m.as_str()))
        {
            wrong.push(format!("the table names {m}, which is not in src/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/ARCHITECTURE.md's rule is broken:\n{}",
        wrong.join("\n")
    );
}

/// The check itself: a module that reaches up is caught, and comments and
/// unit tests are not imports.
#[test]
fn the_layer_check_sees_an_upward_import() {
    let table = layers(
        "| Layer | Modules | What |\n|---|---|---|\n| 0 basic | `error` | x |\n| 3 q | `queue` | x |\n| tests | `simfs` | x |",
    );
    assert_eq!(table["error"], Some(0));
    assert_eq!(table["queue"], Some(3));
    assert_eq!(table["simfs"], None);
    let code =
        "use crate::queue::Queue; // crate::simfs\n#[cfg(test)]\nmod tests { use crate::simfs; }";
    assert_eq!(imports(code, &table), ["queue"]);
}

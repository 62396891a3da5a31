//! Tidy checks: ordinary tests that scan the tree and fail with `path:line` and the fix
//! (rust-analyzer's style). They keep the docs and the architecture invariants honest.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, skipping `target`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "fixtures" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `path:line: text` for each line of the product crates matching `needle`, except in
/// the files allowed to.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = root();
    let mut hits = Vec::new();
    for krate in ["db-budget", "db-async", "db-sync", "retention", "server"] {
        for file in rust_files(&root.join("crates").join(krate).join("src")) {
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if allowed.iter().any(|a| rel.ends_with(a)) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(needle) {
                    hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    hits
}

#[test]
fn the_readme_configuration_table_lists_every_variable_with_its_default() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for var in db_budget::VARIABLES {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", var.name)))
            .unwrap_or_else(|| {
                panic!(
                    "README.md: no configuration row for {}; add `| `{}` | {} | … |`",
                    var.name, var.name, var.default
                )
            });
        let default = row.split('|').nth(2).unwrap_or("").trim();
        assert_eq!(
            default, var.default,
            "README.md: {} defaults to {} in db-budget/src/config.rs, the table says {default}",
            var.name, var.default
        );
    }
}

#[test]
fn only_the_pools_open_database_connections() {
    // Architecture invariant (db-async lib.rs, db-budget lib.rs): a connection opened
    // anywhere else would hold no budget unit.
    let mut hits = offenders("connect_with(", &["crates/db-async/src/pool.rs"]);
    hits.extend(offenders("Conn::new(", &[]));
    hits.extend(offenders("PoolOptions", &[]));
    hits.extend(offenders("sqlx::Pool", &[]));
    hits.extend(offenders(
        "r2d2::Pool::builder",
        &["crates/db-sync/src/pool.rs"],
    ));
    assert!(
        hits.is_empty(),
        "connections opened outside db-async's pool.rs / db-sync's pool.rs (use AsyncPool or SyncPool):\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_test_is_ignored() {
    let root = root();
    let mut hits = Vec::new();
    for file in rust_files(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.ends_with("tests/tidy.rs") {
            continue;
        }
        for (i, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            if line.trim_start().starts_with("#[ignore") {
                hits.push(format!("{rel}:{}", i + 1));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "ignored tests (every test must run; make it pass or delete it):\n{}",
        hits.join("\n")
    );
}

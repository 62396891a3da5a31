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
    for krate in [
        "db-budget",
        "db-async",
        "db-sync",
        "db-fleet",
        "db-view",
        "retention",
        "server",
    ] {
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
                if contains_word(code, needle) {
                    hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    hits
}

#[test]
fn only_the_pools_open_database_connections() {
    // Architecture invariant (db-async lib.rs, db-budget lib.rs): a connection opened
    // anywhere else would hold no budget unit.
    let mut hits = offenders("connect_with(", &["crates/db-async/src/pool/connect.rs"]);
    // The two connections outside the pools, each paid for by a unit withheld from
    // them (`Budget::withhold`): the fleet's control connection and the server view's.
    hits.extend(offenders("Conn::new(", &WITHHELD_CONNECTIONS));
    hits.extend(offenders("PoolOptions", &[]));
    hits.extend(offenders("sqlx::Pool", &[]));
    hits.extend(offenders(
        "r2d2::Pool::builder",
        &["crates/db-sync/src/pool.rs"],
    ));
    assert!(
        hits.is_empty(),
        "connections opened outside db-async's pool/connect.rs / db-sync's pool.rs (use AsyncPool or SyncPool):\n{}",
        hits.join("\n")
    );
}

/// The files that open a connection on a withheld unit instead of through a pool.
const WITHHELD_CONNECTIONS: [&str; 2] = [
    "crates/db-fleet/src/control.rs",
    "crates/db-view/src/reader.rs",
];

/// Whether `code` contains `needle` not glued to a longer name before it (so
/// `Conn::new(` does not match `SyncConn::new(`).
fn contains_word(code: &str, needle: &str) -> bool {
    let glued = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(needle)
        .any(|(at, _)| !needle.starts_with(glued) || !code[..at].ends_with(glued))
}

/// [`offenders`] in the non-test part of each file (up to its `#[cfg(test)]` module).
fn offenders_outside_tests(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = root();
    offenders(needle, allowed)
        .into_iter()
        .filter(|hit| {
            let (path, rest) = hit.split_once(':').unwrap();
            let line: usize = rest.split(':').next().unwrap().parse().unwrap();
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            let tests_start = text
                .lines()
                .position(|l| l.trim() == "#[cfg(test)]")
                .map_or(usize::MAX, |i| i + 1);
            line < tests_start
        })
        .collect()
}

#[test]
fn only_the_pools_take_budget_units() {
    // I1 (ARCHITECTURE.md): a unit taken anywhere but a pool's connect path pays for no
    // connection the pool knows about, and a connection made without one breaks the bound.
    let mut hits =
        offenders_outside_tests(".acquire(Side::", &["crates/db-async/src/pool/acquire.rs"]);
    for needle in ["try_acquire(", "acquire_blocking"] {
        hits.extend(offenders_outside_tests(
            needle,
            &[
                "crates/db-sync/src/manager.rs",
                "crates/db-budget/src/budget.rs",
            ],
        ));
    }
    assert!(
        hits.is_empty(),
        "budget units taken outside db-async's pool/acquire.rs / db-sync's manager.rs (check out a \
         connection from AsyncPool or SyncPool instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_blocking_driver_opens_one_connection_per_unit() {
    // The mysql crate's `prefer_socket` (on by default) opens a second server connection
    // over the unix socket for a TCP connect to a loopback address: one unit would pay
    // for two connections (ARCHITECTURE.md, "The mysql crate").
    let path = "crates/db-sync/src/manager.rs";
    let mut builders = vec![path];
    builders.extend(WITHHELD_CONNECTIONS);
    for file in &builders {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(
            text.contains(".prefer_socket(false)"),
            "{file}: the connect options must set `.prefer_socket(false)`"
        );
    }
    let hits = offenders("OptsBuilder::new(", &builders);
    assert!(
        hits.is_empty(),
        "mysql connect options built outside {path} (build connections in the manager):\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_text_cites_a_file_outside_the_repository() {
    // A clone has only the repository: design notes live in ARCHITECTURE.md.
    let needles = [
        concat!("DESIGN", " §"),
        concat!("DESIGN", ".md"),
        concat!("../", "shared"),
    ];
    let root = root();
    let mut hits = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    stack.push(path);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // binary
            };
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for (i, line) in text.lines().enumerate() {
                if needles.iter().any(|n| line.contains(n)) {
                    hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    hits.sort();
    assert!(
        hits.is_empty(),
        "references to files a clone does not have (point into ARCHITECTURE.md instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_module_is_pulled_in_from_another_crate() {
    // Shared code is a crate (e.g. `loadgen`), never `#[path]` into another crate's tree.
    let root = root();
    let mut hits = Vec::new();
    for file in rust_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("#[path") else {
                continue;
            };
            let target = rest.split('"').nth(1).unwrap_or("");
            let resolved = file.parent().unwrap().join(target);
            let krate = crate_dir(&file);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|p| krate.canonicalize().is_ok_and(|k| p.starts_with(k)));
            if !inside {
                let rel = file.strip_prefix(&root).unwrap().display();
                hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "modules pulled in across crates (make the shared code a crate):\n{}",
        hits.join("\n")
    );
}

/// The directory of the crate `file` belongs to (the nearest with a Cargo.toml).
fn crate_dir(file: &Path) -> PathBuf {
    let mut dir = file.parent().unwrap().to_owned();
    while !dir.join("Cargo.toml").exists() {
        dir = dir.parent().unwrap().to_owned();
    }
    dir
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

#[test]
fn every_metric_the_admin_listener_exports_is_in_the_readme_table() {
    // Operators read README's Metrics table: a family added to /metrics without a row
    // there is one nobody knows to alert on.
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split_once("## Metrics")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
        .expect("README.md has a section `## Metrics`");
    let mut missing = Vec::new();
    for file in rust_files(&root.join("crates/server/src/admin")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            // A metric family is named by a string literal that is only the name.
            for name in line.split('"').skip(1).step_by(2) {
                let is_name = name.starts_with("db_")
                    && name.len() > 3
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                if is_name && !table.contains(&format!("`{name}`")) {
                    let rel = file.strip_prefix(&root).unwrap().display().to_string();
                    missing.push(format!("{rel}:{}: {name}", i + 1));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics missing from README.md's Metrics table (add a row: name, type, what):\n{}",
        missing.join("\n")
    );
}

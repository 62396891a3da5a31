//! Finding the `.rs` files to scan and the package each belongs to.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::manifest::{self, Manifest};

/// The package whose public items are "the blocking API".
pub const SYNC_PACKAGE: &str = "db-sync";
/// The canonical first segment of a resolved blocking-API path.
pub const SYNC_CRATE: &str = "db_sync";
/// Scanned files under this (root-relative) directory are skipped: they are
/// the test fixtures of this very tool.
const FIXTURES_DIR: &str = "xtask/tests/fixtures";

#[derive(Debug)]
pub struct Package {
    pub name: String,
    pub dir: PathBuf,
    /// Crate names under which `db-sync` is visible in this package's code.
    pub sync_names: BTreeSet<String>,
}

#[derive(Debug)]
pub struct SourceFile {
    pub abs: PathBuf,
    /// Root-relative, `/`-separated.
    pub rel: String,
    /// Index into [`Workspace::packages`]; `None` for files outside any package.
    pub package: Option<usize>,
}

#[derive(Debug)]
pub struct Workspace {
    pub packages: Vec<Package>,
    /// Files to scan (the `db-sync` package itself excluded).
    pub files: Vec<SourceFile>,
    /// Files of the `db-sync` package: read for its public item names only.
    pub sync_files: Vec<PathBuf>,
}

impl Workspace {
    pub fn package_name(&self, file: &SourceFile) -> &str {
        file.package
            .map_or("(no package)", |p| &self.packages[p].name)
    }

    pub fn package_dir(&self, file: &SourceFile) -> Option<&Path> {
        file.package.map(|p| self.packages[p].dir.as_path())
    }
}

pub fn discover(root: &Path) -> io::Result<Workspace> {
    let mut manifests = Vec::new();
    let mut rs_files = Vec::new();
    walk(root, root, &mut manifests, &mut rs_files)?;

    let root_manifest = fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .map(|t| manifest::parse(&t));
    let mut packages = Vec::new();
    let mut sync_lib_name = None;
    let mut parsed: Vec<(PathBuf, Manifest)> = Vec::new();
    for dir in manifests {
        let text = fs::read_to_string(dir.join("Cargo.toml"))?;
        let m = manifest::parse(&text);
        if m.package_name.is_none() {
            continue;
        }
        if m.package_name.as_deref() == Some(SYNC_PACKAGE) {
            sync_lib_name = m.lib_name.clone();
        }
        parsed.push((dir, m));
    }
    let default_name = sync_lib_name.unwrap_or_else(|| SYNC_CRATE.to_string());
    for (dir, m) in parsed {
        let mut sync_names = BTreeSet::new();
        sync_names.insert(default_name.clone());
        for name in m.crate_names_for(SYNC_PACKAGE, root_manifest.as_ref()) {
            // a dependency keyed `db-sync` is known by the lib name
            sync_names.insert(if name == SYNC_CRATE {
                default_name.clone()
            } else {
                name
            });
        }
        packages.push(Package {
            name: m.package_name.unwrap_or_default(),
            dir,
            sync_names,
        });
    }

    let mut files = Vec::new();
    let mut sync_files = Vec::new();
    for abs in rs_files {
        let package = packages
            .iter()
            .enumerate()
            .filter(|(_, p)| abs.starts_with(&p.dir))
            .max_by_key(|(_, p)| p.dir.components().count())
            .map(|(i, _)| i);
        if package.is_some_and(|p| packages[p].name == SYNC_PACKAGE) {
            sync_files.push(abs);
            continue;
        }
        let rel = rel_path(root, &abs);
        files.push(SourceFile { abs, rel, package });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Workspace {
        packages,
        files,
        sync_files,
    })
}

pub fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn walk(
    root: &Path,
    dir: &Path,
    manifests: &mut Vec<PathBuf>,
    rs: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if name.starts_with('.') || name == "target" || rel_path(root, &path) == FIXTURES_DIR {
                continue;
            }
            walk(root, &path, manifests, rs)?;
        } else if ty.is_file() {
            if name == "Cargo.toml" {
                manifests.push(dir.to_path_buf());
            } else if name.ends_with(".rs") {
                rs.push(path);
            }
        }
    }
    Ok(())
}

/// Where a file sits in its crate: a key for the crate target (files of one
/// target share a module namespace) and its module path within it.
///
/// `src/lib.rs`, `src/main.rs` → root of `src`; `src/a/b.rs` and
/// `src/a/b/mod.rs` → `a::b`; `tests/x.rs` → root of `tests` (every
/// integration test is its own crate; they are merged, best-effort).
pub fn module_location(package_dir: Option<&Path>, file: &Path) -> (String, Vec<String>) {
    let rel = match package_dir {
        Some(d) => file.strip_prefix(d).unwrap_or(file),
        None => file,
    };
    let mut comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut target = String::from("root");
    if comps.len() > 1 && matches!(comps[0].as_str(), "src" | "tests" | "examples" | "benches") {
        target = comps.remove(0);
        if target == "src" && comps.len() > 1 && comps[0] == "bin" {
            comps.remove(0);
            target = format!("bin/{}", comps[0].trim_end_matches(".rs"));
            comps.remove(0);
            if comps.is_empty() {
                return (target, Vec::new());
            }
        } else if target != "src" && comps.len() == 1 {
            // tests/foo.rs, examples/foo.rs: crate roots
            return (target, Vec::new());
        }
    }
    if let Some(last) = comps.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        let is_root_file = comps.is_empty() && matches!(stem.as_str(), "lib" | "main" | "build");
        if stem != "mod" && !is_root_file {
            comps.push(stem);
        }
    }
    (target, comps)
}

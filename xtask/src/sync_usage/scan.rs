//! The scanner: parses every file with `syn`, builds a table of the `use`
//! bindings of each module (pass 1), then walks every file resolving each
//! path it meets (pass 2). Comments and string literals are never looked at.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use serde::Serialize;
use syn::Item;

use super::bindings::{collect_module, flatten_use, is_test_only};
use super::resolve::{Ctx, ModuleTable, Resolver};
use super::types::{self, PackageTypes};
use super::visitor::{self, FileInfo};
use super::workspace::{self, Workspace};

/// Public names of `db-sync` assumed even if its source cannot be read (a
/// glob import brings these in).
const DEFAULT_SYNC_ITEMS: &[&str] = &[
    "get_database_connection",
    "DbConnection",
    "SyncConn",
    "Transaction",
    "Tx",
    "SyncPool",
    "fetch_one",
    "fetch_optional",
    "fetch_all",
    "fetch_dict_one",
    "fetch_dict_all",
    "execute",
    "transaction",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Import,
    Call,
    Type,
    Signature,
    Macro,
    /// A method called on a blocking pool, connection or transaction.
    Method,
    /// A struct field holding a blocking pool, connection or transaction.
    Field,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Import => "import",
            Kind::Call => "call",
            Kind::Type => "type",
            Kind::Signature => "signature",
            Kind::Macro => "macro",
            Kind::Method => "method",
            Kind::Field => "field",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(rename = "crate")]
    pub krate: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub function: String,
    pub kind: Kind,
    pub text: String,
    /// Inside `#[cfg(test)]`/`#[test]` code or under a `tests/` directory:
    /// reported, not counted.
    pub test: bool,
    /// In a file marked [`INFRASTRUCTURE_MARKER`]: counted apart (an
    /// opt-out the baseline records), not with the uses to port.
    pub infrastructure: bool,
}

/// A file that opted out with [`INFRASTRUCTURE_MARKER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub file: String,
    /// The line of the marker.
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct ScanOutput {
    /// Sorted by crate, file, line, column.
    pub findings: Vec<Finding>,
    /// Files carrying the infrastructure marker, sorted by path.
    pub markers: Vec<Marker>,
    /// Files that could not be read or parsed (`path: error`).
    pub errors: Vec<String>,
    pub files_scanned: usize,
}

struct Parsed {
    file_idx: usize,
    ast: syn::File,
    /// `package#target`: files sharing it share one module namespace.
    target: String,
    module: Vec<String>,
}

pub fn scan(ws: &Workspace) -> ScanOutput {
    let mut out = ScanOutput::default();
    let sync_items = sync_public_items(&ws.sync_files);

    let mut parsed = Vec::new();
    for (file_idx, file) in ws.files.iter().enumerate() {
        let ast = match fs::read_to_string(&file.abs) {
            Ok(text) => match syn::parse_file(&text) {
                Ok(ast) => ast,
                Err(e) => {
                    let at = e.span().start();
                    out.errors
                        .push(format!("{}:{}:{}: {e}", file.rel, at.line, at.column + 1));
                    continue;
                }
            },
            Err(e) => {
                out.errors.push(format!("{}: {e}", file.rel));
                continue;
            }
        };
        let (target, module) = workspace::module_location(ws.package_dir(file), &file.abs);
        let target = format!("{}#{target}", ws.package_name(file));
        parsed.push(Parsed {
            file_idx,
            ast,
            target,
            module,
        });
    }
    out.files_scanned = parsed.len();

    let mut table = ModuleTable::default();
    for p in &parsed {
        for n in 0..p.module.len() {
            table
                .modules
                .insert((p.target.clone(), p.module[..n].to_vec()));
        }
        collect_module(
            &mut table,
            &p.target,
            p.module.clone(),
            &p.ast.items,
            is_test_only(&p.ast.attrs),
        );
    }

    let resolver = Resolver {
        table: &table,
        sync_items: &sync_items,
    };
    let empty = BTreeSet::new();

    // Pass 1b: the blocking-typed fields and functions of each package.
    let mut package_types: HashMap<&str, PackageTypes> = HashMap::new();
    for p in &parsed {
        let file = &ws.files[p.file_idx];
        let ctx = Ctx {
            target: &p.target,
            module: &p.module,
            blocks: &[],
            locals: &[],
            sync_names: file.package.map_or(&empty, |i| &ws.packages[i].sync_names),
        };
        let entry = package_types.entry(ws.package_name(file)).or_default();
        types::collect(&resolver, &ctx, &p.ast.items, entry);
    }
    let no_types = PackageTypes::default();
    for p in &parsed {
        let file = &ws.files[p.file_idx];
        let in_tests_dir = file.rel.split('/').rev().skip(1).any(|c| c == "tests");
        let file_test = in_tests_dir
            || table.is_test_module(&p.target, &p.module)
            || is_test_only(&p.ast.attrs);
        let marker = infrastructure_marker(&p.ast.attrs);
        if let Some(line) = marker {
            out.markers.push(Marker {
                file: file.rel.clone(),
                line,
            });
        }
        let info = FileInfo {
            target: &p.target,
            sync_names: file.package.map_or(&empty, |i| &ws.packages[i].sync_names),
            package: ws.package_name(file),
            file: &file.rel,
            module: p.module.clone(),
            test: file_test,
            infrastructure: marker.is_some(),
            types: package_types
                .get(ws.package_name(file))
                .unwrap_or(&no_types),
        };
        out.findings
            .extend(visitor::scan_file(&resolver, info, &p.ast));
    }
    out.markers.sort_by(|a, b| a.file.cmp(&b.file));
    out.findings.sort_by(|a, b| {
        (&a.krate, &a.file, a.line, a.column).cmp(&(&b.krate, &b.file, b.line, b.column))
    });
    out
}

/// Names of the public items of the `db-sync` crate (any module), plus the
/// documented API names.
fn sync_public_items(files: &[PathBuf]) -> HashSet<String> {
    fn collect(items: &[Item], out: &mut HashSet<String>) {
        for item in items {
            let public = |vis: &syn::Visibility| matches!(vis, syn::Visibility::Public(_));
            let name = match item {
                Item::Fn(i) if public(&i.vis) => Some(&i.sig.ident),
                Item::Struct(i) if public(&i.vis) => Some(&i.ident),
                Item::Enum(i) if public(&i.vis) => Some(&i.ident),
                Item::Union(i) if public(&i.vis) => Some(&i.ident),
                Item::Type(i) if public(&i.vis) => Some(&i.ident),
                Item::Trait(i) if public(&i.vis) => Some(&i.ident),
                Item::Const(i) if public(&i.vis) => Some(&i.ident),
                Item::Static(i) if public(&i.vis) => Some(&i.ident),
                Item::Macro(i) if i.attrs.iter().any(|a| a.path().is_ident("macro_export")) => {
                    i.ident.as_ref()
                }
                Item::Mod(i) => {
                    if let Some((_, items)) = &i.content {
                        collect(items, out);
                    }
                    public(&i.vis).then_some(&i.ident)
                }
                Item::Use(u) if public(&u.vis) => {
                    let mut leaves = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), false, &mut leaves);
                    out.extend(leaves.into_iter().filter_map(|l| l.name));
                    None
                }
                _ => None,
            };
            if let Some(name) = name {
                out.insert(name.to_string());
            }
        }
    }
    let mut out: HashSet<String> = DEFAULT_SYNC_ITEMS.iter().map(|s| s.to_string()).collect();
    for f in files {
        if let Some(ast) = fs::read_to_string(f)
            .ok()
            .and_then(|t| syn::parse_file(&t).ok())
        {
            collect(&ast.items, &mut out);
        }
    }
    out
}

/// The marker a file's module docs carry when it is infrastructure of the blocking pool
/// itself (building, wiring, probing, closing or benchmarking it), not legacy code to
/// port: `//! sync-usage: infrastructure (why)`. Its uses are reported apart and not
/// counted, like test code; they go when db-sync itself goes.
pub const INFRASTRUCTURE_MARKER: &str = "sync-usage: infrastructure";

/// The line of the file's infrastructure marker, if it has one.
fn infrastructure_marker(attrs: &[syn::Attribute]) -> Option<usize> {
    attrs
        .iter()
        .find(|a| {
            a.path().is_ident("doc")
                && matches!(&a.meta, syn::Meta::NameValue(nv)
                if matches!(&nv.value, syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })
                    if s.value().contains(INFRASTRUCTURE_MARKER)))
        })
        .map(|a| a.pound_token.span.start().line)
}

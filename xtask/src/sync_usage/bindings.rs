//! Pass 1: the names each module (or block) binds — `use` items, `extern
//! crate`, type aliases, local items — and which modules are test-only.

use syn::punctuated::Punctuated;
use syn::{Attribute, Item, Meta, Token, Type, UseTree};

use proc_macro2::Span;

use super::resolve::{ModuleTable, Scope, UsePath};

pub fn collect_module(
    table: &mut ModuleTable,
    target: &str,
    module: Vec<String>,
    items: &[Item],
    test: bool,
) {
    let key = (target.to_string(), module.clone());
    if test {
        table.test_modules.insert(key.clone());
    }
    let scope = scope_of_items(items.iter());
    let entry = table.scopes.entry(key.clone()).or_default();
    for (name, paths) in scope.named {
        entry.named.entry(name).or_default().extend(paths);
    }
    entry.globs.extend(scope.globs);
    entry.items.extend(scope.items);
    table.modules.insert(key);
    for item in items {
        if let Item::Mod(m) = item {
            let mut child = module.clone();
            child.push(m.ident.to_string());
            let child_test = is_test_only(&m.attrs);
            if let Some((_, items)) = &m.content {
                collect_module(table, target, child, items, child_test);
            } else {
                let key = (target.to_string(), child);
                if child_test {
                    table.test_modules.insert(key.clone());
                }
                table.modules.insert(key);
            }
        }
    }
}

/// The bindings introduced by a list of items (a module or a block).
pub fn scope_of_items<'a>(items: impl Iterator<Item = &'a Item>) -> Scope {
    let mut scope = Scope::default();
    for item in items {
        let name = match item {
            Item::Use(u) => {
                for leaf in use_leaves(u) {
                    if leaf.glob {
                        scope.globs.push(leaf.path);
                    } else if let Some(name) = leaf.name {
                        scope.named.entry(name).or_default().push(leaf.path);
                    }
                }
                None
            }
            Item::ExternCrate(e) => {
                let name = e.rename.as_ref().map_or(&e.ident, |(_, r)| r).to_string();
                if name != "_" && e.ident != "self" {
                    let path = UsePath {
                        segs: vec![e.ident.to_string()],
                        leading_colon: true,
                    };
                    scope.named.entry(name).or_default().push(path);
                }
                None
            }
            Item::Type(t) => {
                // `type Conn = db_sync::DbConnection;` works like an import
                match &*t.ty {
                    Type::Path(tp) if tp.qself.is_none() => {
                        let path = UsePath {
                            segs: path_segs(&tp.path),
                            leading_colon: tp.path.leading_colon.is_some(),
                        };
                        scope
                            .named
                            .entry(t.ident.to_string())
                            .or_default()
                            .push(path);
                        None
                    }
                    _ => Some(&t.ident),
                }
            }
            Item::Fn(i) => Some(&i.sig.ident),
            Item::Struct(i) => Some(&i.ident),
            Item::Enum(i) => Some(&i.ident),
            Item::Union(i) => Some(&i.ident),
            Item::Trait(i) => Some(&i.ident),
            Item::TraitAlias(i) => Some(&i.ident),
            Item::Const(i) => Some(&i.ident),
            Item::Static(i) => Some(&i.ident),
            Item::Mod(i) => Some(&i.ident),
            _ => None,
        };
        if let Some(name) = name {
            scope.items.insert(name.to_string());
        }
    }
    scope
}

pub struct UseLeaf {
    pub path: UsePath,
    /// The name bound (`None` for globs and `as _`).
    pub name: Option<String>,
    pub glob: bool,
    pub span: Span,
    pub text: String,
}

/// The leaves of a `use` item, one per path it imports.
pub fn use_leaves(u: &syn::ItemUse) -> Vec<UseLeaf> {
    let mut leaves = Vec::new();
    flatten_use(
        &u.tree,
        &mut Vec::new(),
        u.leading_colon.is_some(),
        &mut leaves,
    );
    leaves
}

pub fn flatten_use(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    leading_colon: bool,
    out: &mut Vec<UseLeaf>,
) {
    let text = |segs: &[String], tail: &str| {
        let lead = if leading_colon { "::" } else { "" };
        format!("{lead}{}{tail}", segs.join("::"))
    };
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, leading_colon, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let (segs, name) = if n.ident == "self" {
                (prefix.clone(), prefix.last().cloned())
            } else {
                let mut segs = prefix.clone();
                segs.push(n.ident.to_string());
                (segs, Some(n.ident.to_string()))
            };
            out.push(UseLeaf {
                text: text(&segs, ""),
                path: UsePath {
                    segs,
                    leading_colon,
                },
                name,
                glob: false,
                span: n.ident.span(),
            });
        }
        UseTree::Rename(r) => {
            let mut segs = prefix.clone();
            if r.ident != "self" {
                segs.push(r.ident.to_string());
            }
            let name = (r.rename != "_").then(|| r.rename.to_string());
            out.push(UseLeaf {
                text: text(&segs, &format!(" as {}", r.rename)),
                path: UsePath {
                    segs,
                    leading_colon,
                },
                name,
                glob: false,
                span: r.ident.span(),
            });
        }
        UseTree::Glob(g) => out.push(UseLeaf {
            text: text(prefix, "::*"),
            path: UsePath {
                segs: prefix.clone(),
                leading_colon,
            },
            name: None,
            glob: true,
            span: g.star_token.span,
        }),
        UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, leading_colon, out);
            }
        }
    }
}

// ------------------------------------------------------ cfg(test) helpers

/// Whether the attributes make an item exist only in test builds:
/// `#[test]`/`#[tokio::test]`, or a `#[cfg(..)]` that is false when `test`
/// is (`cfg(test)`, `cfg(all(test, ..))`; not `cfg(any(test, ..))`).
pub fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("cfg") {
            a.parse_args::<Meta>()
                .is_ok_and(|m| cfg_value(&m) == Some(false))
        } else {
            a.path().segments.last().is_some_and(|s| s.ident == "test")
        }
    })
}

/// The value of a cfg predicate in a non-test build (`None`: unknown).
fn cfg_value(meta: &Meta) -> Option<bool> {
    match meta {
        Meta::Path(p) => p.is_ident("test").then_some(false),
        Meta::NameValue(_) => None,
        Meta::List(l) => {
            let args = l
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()?;
            let vals: Vec<Option<bool>> = args.iter().map(cfg_value).collect();
            if l.path.is_ident("all") {
                if vals.contains(&Some(false)) {
                    Some(false)
                } else {
                    vals.iter().all(|v| *v == Some(true)).then_some(true)
                }
            } else if l.path.is_ident("any") {
                if vals.contains(&Some(true)) {
                    Some(true)
                } else {
                    vals.iter().all(|v| *v == Some(false)).then_some(false)
                }
            } else if l.path.is_ident("not") && vals.len() == 1 {
                vals[0].map(|b| !b)
            } else {
                None
            }
        }
    }
}

pub fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

pub fn path_segs(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

//! Name resolution, just far enough to tell whether a path leads into
//! `db_sync`: `use` bindings (renames, groups, globs, re-exports through
//! other modules of the same crate), `crate::`/`self::`/`super::` paths,
//! renamed dependencies, local items and local variables shadowing imports.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::types::Ty;
use super::workspace::SYNC_CRATE;

/// A path as written in a `use` (or a `type` alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsePath {
    pub segs: Vec<String>,
    pub leading_colon: bool,
}

/// The names a module (or a block) brings into scope.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// `use a::b as c;` → `c ↦ a::b`. A name may be bound in several
    /// namespaces, hence the list.
    pub named: HashMap<String, Vec<UsePath>>,
    pub globs: Vec<UsePath>,
    /// Names of items defined here (they shadow glob imports).
    pub items: HashSet<String>,
}

/// The local variables one scope (a block, a closure, a match arm, ...) binds.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    pub names: HashSet<String>,
    /// The ones known to hold a blocking value of `db_sync`.
    pub types: HashMap<String, Ty>,
}

impl Frame {
    pub fn of(names: HashSet<String>) -> Self {
        Frame {
            names,
            types: HashMap::new(),
        }
    }
}

/// A module of one crate target: `(package + target key, module path)`.
pub type ModKey = (String, Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path into the blocking crate, canonicalised to start with `db_sync`.
    Sync(Vec<String>),
    /// A module of the crate being scanned.
    Module(Vec<String>),
}

#[derive(Debug, Default)]
pub struct ModuleTable {
    pub scopes: HashMap<ModKey, Scope>,
    /// Modules known to exist (files, inline `mod`s, `mod x;` declarations).
    pub modules: HashSet<ModKey>,
    /// Modules declared under `#[cfg(test)]`.
    pub test_modules: HashSet<ModKey>,
}

impl ModuleTable {
    pub fn is_test_module(&self, target: &str, path: &[String]) -> bool {
        (0..=path.len()).any(|n| {
            self.test_modules
                .contains(&(target.to_string(), path[..n].to_vec()))
        })
    }
}

/// Where a path is being resolved.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub target: &'a str,
    pub module: &'a [String],
    /// Block scopes, outermost first.
    pub blocks: &'a [Scope],
    /// Local variable names in scope, innermost frame last.
    pub locals: &'a [Frame],
    /// Crate names under which `db-sync` is visible here.
    pub sync_names: &'a BTreeSet<String>,
}

const MAX_DEPTH: usize = 32;

#[derive(Debug)]
pub struct Resolver<'a> {
    pub table: &'a ModuleTable,
    /// Public item names of `db-sync` (what a glob import brings in).
    pub sync_items: &'a HashSet<String>,
}

enum Lookup {
    Found(Target),
    Shadowed,
    NotFound,
}

impl Resolver<'_> {
    /// Resolves a path in expression/type position (or a use path when
    /// `ctx.blocks`/`ctx.locals` are empty).
    pub fn resolve(&self, ctx: &Ctx<'_>, segs: &[String], leading_colon: bool) -> Option<Target> {
        self.resolve_depth(ctx, segs, leading_colon, 0)
    }

    fn resolve_depth(
        &self,
        ctx: &Ctx<'_>,
        segs: &[String],
        leading_colon: bool,
        depth: usize,
    ) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (first, rest) = segs.split_first()?;
        if leading_colon {
            return ctx.sync_names.contains(first).then(|| sync_path(rest));
        }
        match first.as_str() {
            "crate" => return self.in_module(ctx, Vec::new(), rest, depth + 1),
            "self" => return self.in_module(ctx, ctx.module.to_vec(), rest, depth + 1),
            "super" => {
                let mut module = ctx.module.to_vec();
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    module.pop();
                    rest = &rest[1..];
                }
                return self.in_module(ctx, module, rest, depth + 1);
            }
            "Self" => return None,
            _ => {}
        }
        if segs.len() == 1 && ctx.locals.iter().any(|l| l.names.contains(first)) {
            return None;
        }
        let module_ctx = Ctx {
            blocks: &[],
            locals: &[],
            ..*ctx
        };
        for block in ctx.blocks.iter().rev() {
            match self.lookup_in(&module_ctx, block, None, first, depth + 1) {
                Lookup::Found(t) => return self.append(ctx, t, rest, depth + 1),
                Lookup::Shadowed => return None,
                Lookup::NotFound => {}
            }
        }
        match self.lookup_module(ctx, ctx.module, first, depth + 1) {
            Lookup::Found(t) => return self.append(ctx, t, rest, depth + 1),
            Lookup::Shadowed => return None,
            Lookup::NotFound => {}
        }
        ctx.sync_names.contains(first).then(|| sync_path(rest))
    }

    fn append(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        rest: &[String],
        depth: usize,
    ) -> Option<Target> {
        match target {
            Target::Sync(mut p) => {
                p.extend(rest.iter().cloned());
                Some(Target::Sync(p))
            }
            Target::Module(m) => self.in_module(ctx, m, rest, depth),
        }
    }

    /// Resolves `rest` relative to the crate module `module`.
    fn in_module(
        &self,
        ctx: &Ctx<'_>,
        module: Vec<String>,
        rest: &[String],
        depth: usize,
    ) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        let Some((first, rest)) = rest.split_first() else {
            return Some(Target::Module(module));
        };
        match self.lookup_module(ctx, &module, first, depth + 1) {
            Lookup::Found(t) => self.append(ctx, t, rest, depth + 1),
            _ => None,
        }
    }

    /// Looks `name` up among the items and imports of a crate module.
    fn lookup_module(&self, ctx: &Ctx<'_>, module: &[String], name: &str, depth: usize) -> Lookup {
        let key = (ctx.target.to_string(), module.to_vec());
        let mut child = module.to_vec();
        child.push(name.to_string());
        let child_exists = self
            .table
            .modules
            .contains(&(ctx.target.to_string(), child.clone()));
        let Some(scope) = self.table.scopes.get(&key) else {
            return if child_exists {
                Lookup::Found(Target::Module(child))
            } else {
                Lookup::NotFound
            };
        };
        let module_ctx = Ctx {
            module,
            blocks: &[],
            locals: &[],
            ..*ctx
        };
        self.lookup_in(
            &module_ctx,
            scope,
            child_exists.then_some(child),
            name,
            depth,
        )
    }

    fn lookup_in(
        &self,
        ctx: &Ctx<'_>,
        scope: &Scope,
        child: Option<Vec<String>>,
        name: &str,
        depth: usize,
    ) -> Lookup {
        if depth > MAX_DEPTH {
            return Lookup::NotFound;
        }
        if let Some(paths) = scope.named.get(name) {
            let mut module_target = None;
            for p in paths {
                match self.resolve_depth(ctx, &p.segs, p.leading_colon, depth + 1) {
                    Some(t @ Target::Sync(_)) => return Lookup::Found(t),
                    Some(t @ Target::Module(_)) => module_target = Some(t),
                    None => {}
                }
            }
            return module_target.map_or(Lookup::Shadowed, Lookup::Found);
        }
        if let Some(child) = child {
            return Lookup::Found(Target::Module(child));
        }
        if scope.items.contains(name) {
            return Lookup::Shadowed;
        }
        for glob in &scope.globs {
            match self.resolve_depth(ctx, &glob.segs, glob.leading_colon, depth + 1) {
                Some(Target::Sync(mut p)) if self.sync_items.contains(name) => {
                    p.push(name.to_string());
                    return Lookup::Found(Target::Sync(p));
                }
                Some(Target::Module(m)) => {
                    if let Lookup::Found(t) = self.lookup_module(ctx, &m, name, depth + 1) {
                        return Lookup::Found(t);
                    }
                }
                Some(Target::Sync(_)) | None => {}
            }
        }
        Lookup::NotFound
    }
}

fn sync_path(rest: &[String]) -> Target {
    let mut p = vec![SYNC_CRATE.to_string()];
    p.extend(rest.iter().cloned());
    Target::Sync(p)
}

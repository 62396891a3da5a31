//! Just enough typing to see blocking access through a value: which
//! expressions hold a blocking pool, connection or transaction of `db_sync`
//! (a typed parameter or `let`, a struct field declared with that type, what
//! a method or function is declared to return), so that `pool.get()`,
//! `state.sync_pool.get()` or `tx.execute(..)` count like a path into
//! `db_sync` does. Best-effort, like the rest of the scanner: it never looks
//! past one package.

use std::collections::HashMap;

use syn::{GenericArgument, ImplItem, Item, PathArguments, TraitItem, Type};

use super::bindings::path_segs;
use super::resolve::{Ctx, Resolver, Target};

/// A blocking type of `db_sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// `SyncPool`.
    Pool,
    /// `SyncConn` (or its alias `DbConnection`), the guard of a checked-out connection.
    Conn,
    /// `Transaction` (or its alias `Tx`), an open transaction.
    Tx,
    /// `SyncPoolBuilder`: configuring a pool is not using it.
    Builder,
}

impl Blocking {
    fn of_sync_path(path: &[String]) -> Option<Self> {
        match path.last()?.as_str() {
            "SyncPool" => Some(Blocking::Pool),
            // Each with its older name, which `db_sync` keeps as an alias.
            "SyncConn" | "DbConnection" => Some(Blocking::Conn),
            "Transaction" | "Tx" => Some(Blocking::Tx),
            "SyncPoolBuilder" => Some(Blocking::Builder),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Blocking::Pool => "SyncPool",
            Blocking::Conn => "SyncConn",
            Blocking::Tx => "Transaction",
            Blocking::Builder => "SyncPoolBuilder",
        }
    }

    /// Whether calling a method on a value of this type is a use.
    pub fn counts(self) -> bool {
        self != Blocking::Builder
    }

    /// What `method` of this type returns, when that is a blocking type.
    pub fn method_returns(self, method: &str) -> Option<Ty> {
        match (self, method) {
            (Blocking::Pool, "get") => Some(Ty::wrapped(Blocking::Conn)),
            (Blocking::Pool, "clone") => Some(Ty::plain(Blocking::Pool)),
            (Blocking::Builder, "build") => Some(Ty::plain(Blocking::Pool)),
            (Blocking::Builder, _) => Some(Ty::plain(Blocking::Builder)),
            _ => None,
        }
    }

    /// Whether the closure passed to `method` gets a transaction.
    pub fn opens_transaction(self, method: &str) -> bool {
        matches!(self, Blocking::Pool | Blocking::Conn) && method == "transaction"
    }
}

/// What the functions and associated functions of `db_sync` return (by the
/// resolved path), when that is a blocking type.
pub fn sync_fn_returns(path: &[String]) -> Option<Ty> {
    let n = path.len();
    let last = path.last()?.as_str();
    let owner = (n >= 2).then(|| path[n - 2].as_str());
    match (owner, last) {
        (_, "get_database_connection") => Some(Ty::wrapped(Blocking::Conn)),
        (Some("SyncPool"), "builder") => Some(Ty::plain(Blocking::Builder)),
        (Some("SyncPool"), "from_config") => Some(Ty::wrapped(Blocking::Pool)),
        (_, "global") => Some(Ty::wrapped(Blocking::Pool)),
        _ => None,
    }
}

/// The blocking type of a value, and whether it is still wrapped in a
/// `Result`/`Option` (so its methods are the wrapper's, until `?`/`unwrap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ty {
    pub kind: Blocking,
    pub wrapped: bool,
}

impl Ty {
    pub fn plain(kind: Blocking) -> Self {
        Ty {
            kind,
            wrapped: false,
        }
    }

    pub fn wrapped(kind: Blocking) -> Self {
        Ty {
            kind,
            wrapped: true,
        }
    }

    /// The type after a method of the wrapper (`unwrap`, `as_ref`, ...).
    pub fn through_wrapper(self, method: &str) -> Option<Ty> {
        match method {
            "unwrap" | "expect" | "unwrap_or_else" | "unwrap_unchecked" | "get_or_init"
            | "borrow" | "borrow_mut" => Some(Ty::plain(self.kind)),
            "as_ref" | "as_mut" | "as_deref" | "clone" | "cloned" | "ok" | "map_err"
            | "context" | "with_context" | "inspect_err" | "get" | "lock" | "read" | "write" => {
                Some(self)
            }
            _ => None,
        }
    }
}

/// Smart pointers a method call sees through.
const TRANSPARENT: &[&str] = &["Arc", "Rc", "Box", "Cow", "ManuallyDrop"];
/// Wrappers whose methods hide the inner type's.
const WRAPPERS: &[&str] = &[
    "Option", "Result", "Mutex", "RwLock", "OnceLock", "OnceCell", "LazyLock", "RefCell", "Cell",
];

/// The blocking type a written type denotes. `resolve` maps a type path to
/// its canonical path inside `db_sync`, if it leads there.
pub fn of_type(ty: &Type, resolve: &dyn Fn(&syn::Path) -> Option<Vec<String>>) -> Option<Ty> {
    match ty {
        Type::Reference(r) => of_type(&r.elem, resolve),
        Type::Paren(p) => of_type(&p.elem, resolve),
        Type::Group(g) => of_type(&g.elem, resolve),
        Type::Path(p) if p.qself.is_none() => {
            if let Some(path) = resolve(&p.path) {
                return Blocking::of_sync_path(&path).map(Ty::plain);
            }
            let last = p.path.segments.last()?;
            let name = last.ident.to_string();
            let transparent = TRANSPARENT.contains(&name.as_str());
            if !transparent && !WRAPPERS.contains(&name.as_str()) {
                return None;
            }
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let inner = args.args.iter().find_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })?;
            let t = of_type(inner, resolve)?;
            Some(if transparent { t } else { Ty::wrapped(t.kind) })
        }
        _ => None,
    }
}

/// The blocking-typed names a package declares: struct fields, and what
/// its functions and methods return.
#[derive(Debug, Default)]
pub struct PackageTypes {
    /// Field name (or tuple index) ↦ type, over every struct of the package.
    pub fields: HashMap<String, Ty>,
    /// Method name ↦ return type, over every `impl` and trait of the package.
    pub methods: HashMap<String, Ty>,
    /// Free function name, and `Type::function` for associated ones ↦ return type.
    pub functions: HashMap<String, Ty>,
    /// `static`/`const` name ↦ type.
    pub statics: HashMap<String, Ty>,
}

/// Adds the declarations of one module (and its inline submodules) to `out`.
pub fn collect(resolver: &Resolver<'_>, ctx: &Ctx<'_>, items: &[Item], out: &mut PackageTypes) {
    let resolve =
        |p: &syn::Path| match resolver.resolve(ctx, &path_segs(p), p.leading_colon.is_some()) {
            Some(Target::Sync(path)) => Some(path),
            _ => None,
        };
    let ret = |sig: &syn::Signature| match &sig.output {
        syn::ReturnType::Type(_, t) => of_type(t, &resolve),
        syn::ReturnType::Default => None,
    };
    for item in items {
        match item {
            Item::Struct(s) => {
                for (i, field) in s.fields.iter().enumerate() {
                    if let Some(t) = of_type(&field.ty, &resolve) {
                        let name = field
                            .ident
                            .as_ref()
                            .map_or_else(|| i.to_string(), ToString::to_string);
                        out.fields.insert(name, t);
                    }
                }
            }
            Item::Static(st) => {
                if let Some(t) = of_type(&st.ty, &resolve) {
                    out.statics.insert(st.ident.to_string(), t);
                }
            }
            Item::Const(c) => {
                if let Some(t) = of_type(&c.ty, &resolve) {
                    out.statics.insert(c.ident.to_string(), t);
                }
            }
            Item::Fn(f) => {
                if let Some(t) = ret(&f.sig) {
                    out.functions.insert(f.sig.ident.to_string(), t);
                }
            }
            Item::Impl(i) => {
                let owner = match &*i.self_ty {
                    Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
                    _ => None,
                };
                for it in &i.items {
                    if let ImplItem::Fn(f) = it
                        && let Some(t) = ret(&f.sig)
                    {
                        out.methods.insert(f.sig.ident.to_string(), t);
                        if let Some(owner) = &owner {
                            out.functions.insert(format!("{owner}::{}", f.sig.ident), t);
                        }
                    }
                }
            }
            Item::Trait(tr) => {
                for it in &tr.items {
                    if let TraitItem::Fn(f) = it
                        && let Some(t) = ret(&f.sig)
                    {
                        out.methods.insert(f.sig.ident.to_string(), t);
                    }
                }
            }
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    let mut module = ctx.module.to_vec();
                    module.push(m.ident.to_string());
                    let inner = Ctx {
                        module: &module,
                        ..*ctx
                    };
                    collect(resolver, &inner, items, out);
                }
            }
            _ => {}
        }
    }
}

//! Pass 2: walks one file, resolving every path it meets (including the
//! paths found, best-effort, in macro token streams), and following blocking
//! values through their types (see `types`): a method called on a pool,
//! connection or transaction, or a field holding one, is a use too.
//!
//! The visitor's state and its bookkeeping are here; `text` renders paths and
//! expressions, `typing` tells the blocking type of an expression or pattern,
//! `tokens` scans macro bodies, and `walk` is the `syn::visit::Visit` walk itself.

mod text;
mod tokens;
mod typing;
mod walk;

use std::collections::{BTreeSet, HashMap, HashSet};

use proc_macro2::Span;
use syn::Attribute;
use syn::visit::Visit;

use super::bindings::{is_test_only, path_segs};
use super::resolve::{Ctx, Frame, Resolver, Scope, Target};
use super::scan::{Finding, Kind};
use super::types::{PackageTypes, Ty};

/// What pass 2 needs to know about a file.
#[derive(Debug)]
pub struct FileInfo<'a> {
    /// `package#target` (see `workspace::module_location`).
    pub target: &'a str,
    /// Crate names under which `db-sync` is visible in this package.
    pub sync_names: &'a BTreeSet<String>,
    pub package: &'a str,
    /// Root-relative path.
    pub file: &'a str,
    /// Module path of the file within its crate.
    pub module: Vec<String>,
    /// The whole file is test code.
    pub test: bool,
    /// The file carries the infrastructure marker.
    pub infrastructure: bool,
    /// The blocking-typed fields and functions of the file's package.
    pub types: &'a PackageTypes,
}

/// All the paths into `db_sync` found in one file.
pub fn scan_file(resolver: &Resolver<'_>, info: FileInfo<'_>, ast: &syn::File) -> Vec<Finding> {
    let mut v = FileVisitor {
        resolver,
        target: info.target,
        sync_names: info.sync_names,
        package: info.package,
        file: info.file,
        module: info.module,
        blocks: Vec::new(),
        locals: Vec::new(),
        fn_stack: Vec::new(),
        self_ty: None,
        test_depth: usize::from(info.test),
        infrastructure: info.infrastructure,
        types: info.types,
        closure_param: None,
        arm_value: None,
        typed_only: false,
        sig_mode: false,
        findings: Vec::new(),
    };
    v.visit_file(ast);
    v.findings
}

struct FileVisitor<'a> {
    resolver: &'a Resolver<'a>,
    target: &'a str,
    sync_names: &'a BTreeSet<String>,
    package: &'a str,
    file: &'a str,
    module: Vec<String>,
    blocks: Vec<Scope>,
    locals: Vec<Frame>,
    /// Enclosing functions, innermost last (`Type::method` for methods).
    fn_stack: Vec<String>,
    /// The type of the enclosing `impl` (or the enclosing trait).
    self_ty: Option<String>,
    test_depth: usize,
    infrastructure: bool,
    types: &'a PackageTypes,
    /// The type of the first parameter of the closure about to be visited.
    closure_param: Option<Ty>,
    /// The type of the value the match arm about to be visited matches.
    arm_value: Option<Ty>,
    /// Visiting a macro body parsed as code: only typed access is recorded
    /// (its paths were found by the token scan).
    typed_only: bool,
    /// Visiting the inputs/output of a fn signature.
    sig_mode: bool,
    findings: Vec<Finding>,
}

impl FileVisitor<'_> {
    fn resolve(
        &self,
        segs: &[String],
        leading_colon: bool,
        with_locals: bool,
    ) -> Option<Vec<String>> {
        let ctx = Ctx {
            target: self.target,
            module: &self.module,
            blocks: &self.blocks,
            locals: if with_locals { &self.locals } else { &[] },
            sync_names: self.sync_names,
        };
        match self.resolver.resolve(&ctx, segs, leading_colon) {
            Some(Target::Sync(p)) => Some(p),
            _ => None,
        }
    }

    fn resolve_path(&self, path: &syn::Path) -> Option<Vec<String>> {
        self.resolve(&path_segs(path), path.leading_colon.is_some(), true)
    }

    fn function_name(&self) -> String {
        let mut parts = self.module.clone();
        if self.fn_stack.is_empty() {
            parts.push("<module>".into());
        } else {
            parts.extend(self.fn_stack.iter().cloned());
        }
        parts.join("::")
    }

    fn record(&mut self, span: Span, kind: Kind, text: String) {
        if self.typed_only && !matches!(kind, Kind::Method | Kind::Field) {
            return;
        }
        let at = span.start();
        self.findings.push(Finding {
            krate: self.package.to_string(),
            file: self.file.to_string(),
            line: at.line,
            column: at.column + 1,
            function: self.function_name(),
            kind,
            text,
            test: self.test_depth > 0,
            infrastructure: self.infrastructure,
        });
    }

    fn path_span(path: &syn::Path) -> Span {
        match (&path.leading_colon, path.segments.first()) {
            (Some(c), _) => c.spans[0],
            (None, Some(s)) => s.ident.span(),
            (None, None) => Span::call_site(),
        }
    }

    fn with_test_attrs(&mut self, attrs: &[Attribute], f: impl FnOnce(&mut Self)) {
        let test = is_test_only(attrs);
        self.test_depth += usize::from(test);
        f(self);
        self.test_depth -= usize::from(test);
    }

    fn with_fn(&mut self, name: String, f: impl FnOnce(&mut Self)) {
        self.fn_stack.push(name);
        self.locals.push(Frame::default());
        f(self);
        self.locals.pop();
        self.fn_stack.pop();
    }

    /// Binds `names` in the innermost frame; those in `types` hold blocking
    /// values, the others no longer do (a shadowing `let`).
    fn bind(&mut self, names: HashSet<String>, types: HashMap<String, Ty>) {
        if let Some(frame) = self.locals.last_mut() {
            for n in &names {
                match types.get(n) {
                    Some(t) => {
                        frame.types.insert(n.clone(), *t);
                    }
                    None => {
                        frame.types.remove(n);
                    }
                }
            }
            frame.names.extend(names);
        }
    }
}

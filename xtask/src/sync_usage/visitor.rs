//! Pass 2: walks one file, resolving every path it meets (including the
//! paths found, best-effort, in macro token streams), and following blocking
//! values through their types (see `types`): a method called on a pool,
//! connection or transaction, or a field holding one, is a use too.

use std::collections::{BTreeSet, HashMap, HashSet};

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Item, Member, Pat, Token, Type};

use super::bindings::{flatten_use, is_test_only, item_attrs, path_segs, scope_of_items};
use super::resolve::{Ctx, Frame, Resolver, Scope, Target};
use super::scan::{Finding, Kind};
use super::types::{self, Blocking, PackageTypes, Ty};

/// The guard type: a signature mentioning it takes or returns a connection.
const GUARD: &str = "DbConnection";

fn path_text(path: &syn::Path) -> String {
    let lead = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{lead}{}", path_segs(path).join("::"))
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| "_".into(), |s| s.ident.to_string()),
        Type::Reference(r) => type_name(&r.elem),
        Type::Paren(p) => type_name(&p.elem),
        Type::Group(g) => type_name(&g.elem),
        _ => "_".into(),
    }
}

/// Names bound by a pattern (identifiers starting with an upper-case letter
/// are taken to be constants or unit structs, not bindings).
fn pat_bindings(pat: &Pat, out: &mut HashSet<String>) {
    match pat {
        Pat::Ident(p) => {
            if !p.ident.to_string().starts_with(|c: char| c.is_uppercase()) {
                out.insert(p.ident.to_string());
            }
            if let Some((_, sub)) = &p.subpat {
                pat_bindings(sub, out);
            }
        }
        Pat::Or(p) => p.cases.iter().for_each(|c| pat_bindings(c, out)),
        Pat::Paren(p) => pat_bindings(&p.pat, out),
        Pat::Reference(p) => pat_bindings(&p.pat, out),
        Pat::Slice(p) => p.elems.iter().for_each(|c| pat_bindings(c, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| pat_bindings(&f.pat, out)),
        Pat::Tuple(p) => p.elems.iter().for_each(|c| pat_bindings(c, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|c| pat_bindings(c, out)),
        Pat::Type(p) => pat_bindings(&p.pat, out),
        _ => {}
    }
}

fn member_text(m: &Member) -> String {
    match m {
        Member::Named(i) => i.to_string(),
        Member::Unnamed(i) => i.index.to_string(),
    }
}

fn member_span(m: &Member) -> Span {
    match m {
        Member::Named(i) => i.span(),
        Member::Unnamed(i) => i.span,
    }
}

/// A short rendering of the expression a blocking value comes from.
fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Path(p) => path_text(&p.path),
        Expr::Field(f) => format!("{}.{}", expr_text(&f.base), member_text(&f.member)),
        Expr::MethodCall(m) => format!("{}.{}()", expr_text(&m.receiver), m.method),
        Expr::Call(c) => format!("{}()", expr_text(&c.func)),
        Expr::Try(t) => format!("{}?", expr_text(&t.expr)),
        Expr::Await(a) => format!("{}.await", expr_text(&a.base)),
        Expr::Reference(r) => expr_text(&r.expr),
        Expr::Paren(p) => expr_text(&p.expr),
        Expr::Group(g) => expr_text(&g.expr),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => format!("*{}", expr_text(&u.expr)),
        _ => "_".into(),
    }
}

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

    fn local_ty(&self, name: &str) -> Option<Ty> {
        self.locals
            .iter()
            .rev()
            .find(|f| f.names.contains(name))
            .and_then(|f| f.types.get(name).copied())
    }

    fn type_ty(&self, ty: &Type) -> Option<Ty> {
        types::of_type(ty, &|p| {
            self.resolve(&path_segs(p), p.leading_colon.is_some(), false)
        })
    }

    fn field_ty(&self, f: &syn::ExprField) -> Option<Ty> {
        self.types.fields.get(&member_text(&f.member)).copied()
    }

    /// The blocking type of an expression's value, when it can be told.
    fn expr_ty(&self, e: &Expr) -> Option<Ty> {
        match e {
            Expr::Path(p) if p.qself.is_none() => {
                let name = p.path.get_ident()?.to_string();
                if self.locals.iter().any(|f| f.names.contains(&name)) {
                    self.local_ty(&name)
                } else {
                    self.types.statics.get(&name).copied()
                }
            }
            Expr::Field(f) => self.field_ty(f),
            Expr::Reference(r) => self.expr_ty(&r.expr),
            Expr::Paren(p) => self.expr_ty(&p.expr),
            Expr::Group(g) => self.expr_ty(&g.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => self.expr_ty(&u.expr),
            Expr::Try(t) => self.expr_ty(&t.expr).map(|t| Ty::plain(t.kind)),
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                match self.expr_ty(&m.receiver) {
                    Some(t) if t.wrapped => t.through_wrapper(&name),
                    Some(t) => t.kind.method_returns(&name),
                    None => self.types.methods.get(&name).copied(),
                }
            }
            Expr::Call(c) => {
                let Expr::Path(p) = &*c.func else {
                    return None;
                };
                if p.qself.is_some() {
                    return None;
                }
                if let Some(path) = self.resolve_path(&p.path) {
                    return types::sync_fn_returns(&path);
                }
                let segs = path_segs(&p.path);
                let key = match segs.as_slice() {
                    [.., a, b] if a == "Self" => format!("{}::{b}", self.self_ty.as_deref()?),
                    [.., a, b] => format!("{a}::{b}"),
                    [b] => b.clone(),
                    [] => return None,
                };
                self.types.functions.get(&key).copied()
            }
            _ => None,
        }
    }

    /// The blocking-typed names a pattern binds, given the type of the value
    /// it matches.
    fn pat_types(&self, pat: &Pat, value: Option<Ty>, out: &mut HashMap<String, Ty>) {
        match pat {
            Pat::Ident(p) => {
                if let Some(t) = value {
                    out.insert(p.ident.to_string(), t);
                }
            }
            Pat::Type(p) => self.pat_types(&p.pat, self.type_ty(&p.ty).or(value), out),
            Pat::Reference(p) => self.pat_types(&p.pat, value, out),
            Pat::Paren(p) => self.pat_types(&p.pat, value, out),
            Pat::TupleStruct(p) if p.elems.len() == 1 => {
                let unwrapped = p
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Ok" || s.ident == "Some");
                if unwrapped && let Some(inner) = p.elems.first() {
                    let value = value.filter(|t| t.wrapped).map(|t| Ty::plain(t.kind));
                    self.pat_types(inner, value, out);
                }
            }
            Pat::Struct(p) => {
                for field in &p.fields {
                    let t = self.types.fields.get(&member_text(&field.member)).copied();
                    self.pat_types(&field.pat, t, out);
                }
            }
            _ => {}
        }
    }

    /// Visits a method call's receiver; a blocking field there is covered by
    /// the method call's own finding.
    fn visit_receiver(&mut self, e: &Expr) {
        match e {
            Expr::Field(f) if self.field_ty(f).is_some() => self.visit_expr(&f.base),
            Expr::Paren(p) => self.visit_receiver(&p.expr),
            Expr::Reference(r) => self.visit_receiver(&r.expr),
            _ => self.visit_expr(e),
        }
    }

    fn method_name(&self, ident: &syn::Ident) -> String {
        match &self.self_ty {
            Some(t) => format!("{t}::{ident}"),
            None => ident.to_string(),
        }
    }

    /// Best-effort scan of a macro's tokens for paths into `db_sync`.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                self.scan_tokens(g.stream());
                i += 1;
                continue;
            }
            let Some((segs, leading_colon, end)) = token_path_at(&tts, i) else {
                i += 1;
                continue;
            };
            if !skip_token_path(&tts, i, end, segs.len())
                && self.resolve(&segs, leading_colon, true).is_some()
            {
                let lead = if leading_colon { "::" } else { "" };
                self.record(
                    tts[i].span(),
                    Kind::Macro,
                    format!("{lead}{}", segs.join("::")),
                );
            }
            i = end;
        }
    }
}

fn is_punct(tt: Option<&TokenTree>, ch: char) -> bool {
    matches!(tt, Some(TokenTree::Punct(p)) if p.as_char() == ch)
}

fn is_colon2(tts: &[TokenTree], i: usize) -> bool {
    matches!(tts.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && is_punct(tts.get(i + 1), ':')
}

/// A path starting at `i`: its segments, whether it has a leading `::`, and
/// the index after it.
fn token_path_at(tts: &[TokenTree], i: usize) -> Option<(Vec<String>, bool, usize)> {
    let leading_colon = is_colon2(tts, i);
    let mut j = if leading_colon { i + 2 } else { i };
    let TokenTree::Ident(first) = tts.get(j)? else {
        return None;
    };
    let mut segs = vec![first.to_string()];
    j += 1;
    while is_colon2(tts, j) {
        match tts.get(j + 2) {
            Some(TokenTree::Ident(id)) => {
                segs.push(id.to_string());
                j += 3;
            }
            _ => break,
        }
    }
    Some((segs, leading_colon, j))
}

/// Token paths that are not paths: method and field names (`x.fetch_one`),
/// macro variables, lifetimes, names being defined, field names in struct
/// literals, continuations after turbofish.
fn skip_token_path(tts: &[TokenTree], start: usize, end: usize, len: usize) -> bool {
    const BINDERS: &[&str] = &[
        "fn", "let", "mut", "ref", "struct", "enum", "union", "type", "trait", "const", "static",
        "mod",
    ];
    if start > 0 {
        let prev = &tts[start - 1];
        if is_punct(Some(prev), '.') || is_punct(Some(prev), '$') || is_punct(Some(prev), '\'') {
            return true;
        }
        if start > 1 && is_colon2(tts, start - 2) {
            return true;
        }
        if len == 1
            && matches!(prev, TokenTree::Ident(id) if BINDERS.contains(&id.to_string().as_str()))
        {
            return true;
        }
    }
    len == 1 && is_punct(tts.get(end), ':') && !is_colon2(tts, end)
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item(&mut self, i: &'ast Item) {
        self.with_test_attrs(item_attrs(i), |v| visit::visit_item(v, i));
    }

    fn visit_impl_item(&mut self, i: &'ast syn::ImplItem) {
        let attrs: &[Attribute] = match i {
            syn::ImplItem::Const(c) => &c.attrs,
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Type(t) => &t.attrs,
            syn::ImplItem::Macro(m) => &m.attrs,
            _ => &[],
        };
        self.with_test_attrs(attrs, |v| visit::visit_impl_item(v, i));
    }

    fn visit_trait_item(&mut self, i: &'ast syn::TraitItem) {
        let attrs: &[Attribute] = match i {
            syn::TraitItem::Const(c) => &c.attrs,
            syn::TraitItem::Fn(f) => &f.attrs,
            syn::TraitItem::Type(t) => &t.attrs,
            syn::TraitItem::Macro(m) => &m.attrs,
            _ => &[],
        };
        self.with_test_attrs(attrs, |v| visit::visit_trait_item(v, i));
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut leaves = Vec::new();
        flatten_use(
            &u.tree,
            &mut Vec::new(),
            u.leading_colon.is_some(),
            &mut leaves,
        );
        for leaf in leaves {
            if self
                .resolve(&leaf.path.segs, leaf.path.leading_colon, false)
                .is_some()
            {
                self.record(leaf.span, Kind::Import, leaf.text);
            }
        }
    }

    fn visit_item_extern_crate(&mut self, e: &'ast syn::ItemExternCrate) {
        if self.sync_names.contains(&e.ident.to_string()) {
            let rename = e
                .rename
                .as_ref()
                .map(|(_, r)| format!(" as {r}"))
                .unwrap_or_default();
            self.record(
                e.ident.span(),
                Kind::Import,
                format!("extern crate {}{rename}", e.ident),
            );
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        for a in &m.attrs {
            self.visit_attribute(a);
        }
        let Some((_, items)) = &m.content else {
            return;
        };
        let module = self.module.clone();
        let saved = (
            std::mem::take(&mut self.blocks),
            std::mem::take(&mut self.locals),
            std::mem::take(&mut self.fn_stack),
            self.self_ty.take(),
        );
        self.module.push(m.ident.to_string());
        for item in items {
            self.visit_item(item);
        }
        self.module = module;
        (self.blocks, self.locals, self.fn_stack, self.self_ty) = saved;
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let saved = self.self_ty.take();
        self.with_fn(f.sig.ident.to_string(), |v| visit::visit_item_fn(v, f));
        self.self_ty = saved;
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let name = self.method_name(&f.sig.ident);
        self.with_fn(name, |v| visit::visit_impl_item_fn(v, f));
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        let name = self.method_name(&f.sig.ident);
        self.with_fn(name, |v| visit::visit_trait_item_fn(v, f));
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let saved = self.self_ty.replace(type_name(&i.self_ty));
        visit::visit_item_impl(self, i);
        self.self_ty = saved;
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        let saved = self.self_ty.replace(t.ident.to_string());
        visit::visit_item_trait(self, t);
        self.self_ty = saved;
    }

    fn visit_signature(&mut self, sig: &'ast syn::Signature) {
        self.visit_generics(&sig.generics);
        let saved = std::mem::replace(&mut self.sig_mode, true);
        for input in &sig.inputs {
            self.visit_fn_arg(input);
        }
        self.visit_return_type(&sig.output);
        self.sig_mode = saved;
        let mut names = HashSet::new();
        let mut types = HashMap::new();
        for input in &sig.inputs {
            if let syn::FnArg::Typed(t) = input {
                pat_bindings(&t.pat, &mut names);
                self.pat_types(&t.pat, self.type_ty(&t.ty), &mut types);
            }
        }
        self.bind(names, types);
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        let scope = scope_of_items(b.stmts.iter().filter_map(|s| match s {
            syn::Stmt::Item(i) => Some(i),
            _ => None,
        }));
        self.blocks.push(scope);
        self.locals.push(Frame::default());
        visit::visit_block(self, b);
        self.locals.pop();
        self.blocks.pop();
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        self.with_test_attrs(&l.attrs, |v| visit::visit_local(v, l));
        let mut names = HashSet::new();
        pat_bindings(&l.pat, &mut names);
        let value = l.init.as_ref().and_then(|i| self.expr_ty(&i.expr));
        let mut types = HashMap::new();
        self.pat_types(&l.pat, value, &mut types);
        self.bind(names, types);
    }

    fn visit_expr_let(&mut self, e: &'ast syn::ExprLet) {
        visit::visit_expr_let(self, e);
        let mut names = HashSet::new();
        pat_bindings(&e.pat, &mut names);
        let mut types = HashMap::new();
        self.pat_types(&e.pat, self.expr_ty(&e.expr), &mut types);
        self.bind(names, types);
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        let first = self.closure_param.take();
        let mut names = HashSet::new();
        let mut types = HashMap::new();
        for (i, p) in c.inputs.iter().enumerate() {
            pat_bindings(p, &mut names);
            self.pat_types(p, first.filter(|_| i == 0), &mut types);
        }
        self.locals.push(Frame::default());
        self.bind(names, types);
        visit::visit_expr_closure(self, c);
        self.locals.pop();
    }

    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        let value = self.arm_value.take();
        let mut names = HashSet::new();
        pat_bindings(&a.pat, &mut names);
        let mut types = HashMap::new();
        self.pat_types(&a.pat, value, &mut types);
        self.locals.push(Frame::default());
        self.bind(names, types);
        visit::visit_arm(self, a);
        self.locals.pop();
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        let mut names = HashSet::new();
        pat_bindings(&f.pat, &mut names);
        self.locals.push(Frame::of(names));
        self.visit_pat(&f.pat);
        self.visit_block(&f.body);
        self.locals.pop();
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let Expr::Path(p) = &*c.func
            && p.qself.is_none()
            && self.resolve_path(&p.path).is_some()
        {
            self.record(Self::path_span(&p.path), Kind::Call, path_text(&p.path));
            for seg in &p.path.segments {
                self.visit_path_arguments(&seg.arguments);
            }
            for arg in &c.args {
                self.visit_expr(arg);
            }
            return;
        }
        visit::visit_expr_call(self, c);
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        for a in &m.attrs {
            self.visit_attribute(a);
        }
        self.visit_expr(&m.expr);
        let value = self.expr_ty(&m.expr);
        for arm in &m.arms {
            self.arm_value = value;
            self.visit_arm(arm);
        }
    }

    fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
        let Some(t) = self
            .expr_ty(&m.receiver)
            .filter(|t| !t.wrapped && t.kind.counts())
        else {
            return visit::visit_expr_method_call(self, m);
        };
        for a in &m.attrs {
            self.visit_attribute(a);
        }
        let name = m.method.to_string();
        self.record(
            m.method.span(),
            Kind::Method,
            format!("{}::{name} via {}", t.kind.name(), expr_text(&m.receiver)),
        );
        self.visit_receiver(&m.receiver);
        if let Some(tf) = &m.turbofish {
            self.visit_angle_bracketed_generic_arguments(tf);
        }
        let opens_tx = t.kind.opens_transaction(&name);
        for arg in &m.args {
            if opens_tx && matches!(arg, Expr::Closure(_)) {
                self.closure_param = Some(Ty::plain(Blocking::Tx));
            }
            self.visit_expr(arg);
        }
    }

    fn visit_expr_field(&mut self, f: &'ast syn::ExprField) {
        if let Some(t) = self.field_ty(f).filter(|t| t.kind.counts()) {
            self.record(
                member_span(&f.member),
                Kind::Field,
                format!(
                    "{} via {}.{}",
                    t.kind.name(),
                    expr_text(&f.base),
                    member_text(&f.member)
                ),
            );
        }
        visit::visit_expr_field(self, f);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some(resolved) = self.resolve_path(path) {
            let guard = resolved.last().is_some_and(|s| s == GUARD);
            let kind = if self.sig_mode && guard {
                Kind::Signature
            } else {
                Kind::Type
            };
            self.record(Self::path_span(path), kind, path_text(path));
        }
        visit::visit_path(self, path);
    }

    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        let name = p.ident.to_string();
        if name.starts_with(|c: char| c.is_uppercase())
            && self
                .resolve(std::slice::from_ref(&name), false, true)
                .is_some()
        {
            self.record(p.ident.span(), Kind::Type, name);
        }
        visit::visit_pat_ident(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if !self.typed_only {
            if self.resolve_path(&m.path).is_some() {
                self.record(
                    Self::path_span(&m.path),
                    Kind::Macro,
                    format!("{}!", path_text(&m.path)),
                );
            }
            self.scan_tokens(m.tokens.clone());
        }
        // Blocking values used inside (`tokio::join!(pool.get(), ..)`,
        // `format!("{}", state.sync_pool.state())`): the body read as
        // expressions or statements, when it is that; the paths in it were
        // found by the token scan above.
        let body: Option<Vec<syn::Stmt>> = m
            .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
            .map(|exprs| {
                exprs
                    .into_iter()
                    .map(|e| syn::Stmt::Expr(e, None))
                    .collect()
            })
            .or_else(|_| m.parse_body_with(syn::Block::parse_within))
            .ok();
        if let Some(stmts) = body {
            let saved = std::mem::replace(&mut self.typed_only, true);
            self.locals.push(Frame::default());
            for stmt in &stmts {
                self.visit_stmt(stmt);
            }
            self.locals.pop();
            self.typed_only = saved;
        }
    }

    fn visit_attribute(&mut self, a: &'ast Attribute) {
        if self.resolve_path(a.path()).is_some() {
            self.record(
                Self::path_span(a.path()),
                Kind::Macro,
                format!("#[{}]", path_text(a.path())),
            );
        }
    }
}

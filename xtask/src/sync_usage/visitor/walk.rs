//! The walk: every item, signature, binding and expression a blocking use can hide in.

use std::collections::{HashMap, HashSet};

use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Item, Token};

use super::super::bindings::{item_attrs, scope_of_items, use_leaves};
use super::super::resolve::Frame;
use super::super::scan::Kind;
use super::super::types::{Blocking, Ty};
use super::FileVisitor;
use super::text::{expr_text, member_span, member_text, pat_bindings, path_text, type_name};

/// The guard type: a signature mentioning it takes or returns a connection.
const GUARD: &str = "DbConnection";
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
        for leaf in use_leaves(u) {
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

//! The blocking type of an expression's value, and of the names a pattern binds.

use std::collections::HashMap;

use syn::visit::Visit;
use syn::{Expr, Pat, Type};

use super::super::bindings::path_segs;
use super::super::types::{self, Ty};
use super::FileVisitor;
use super::text::member_text;

impl FileVisitor<'_> {
    pub(super) fn local_ty(&self, name: &str) -> Option<Ty> {
        self.locals
            .iter()
            .rev()
            .find(|f| f.names.contains(name))
            .and_then(|f| f.types.get(name).copied())
    }

    pub(super) fn type_ty(&self, ty: &Type) -> Option<Ty> {
        types::of_type(ty, &|p| {
            self.resolve(&path_segs(p), p.leading_colon.is_some(), false)
        })
    }

    pub(super) fn field_ty(&self, f: &syn::ExprField) -> Option<Ty> {
        self.types.fields.get(&member_text(&f.member)).copied()
    }

    /// The blocking type of an expression's value, when it can be told.
    pub(super) fn expr_ty(&self, e: &Expr) -> Option<Ty> {
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
    pub(super) fn pat_types(&self, pat: &Pat, value: Option<Ty>, out: &mut HashMap<String, Ty>) {
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
    pub(super) fn visit_receiver(&mut self, e: &Expr) {
        match e {
            Expr::Field(f) if self.field_ty(f).is_some() => self.visit_expr(&f.base),
            Expr::Paren(p) => self.visit_receiver(&p.expr),
            Expr::Reference(r) => self.visit_receiver(&r.expr),
            _ => self.visit_expr(e),
        }
    }

    pub(super) fn method_name(&self, ident: &syn::Ident) -> String {
        match &self.self_ty {
            Some(t) => format!("{t}::{ident}"),
            None => ident.to_string(),
        }
    }
}

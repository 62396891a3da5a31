//! Short renderings of paths, types, members and expressions for findings, and the
//! names a pattern binds.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::{Expr, Member, Pat, Type};

use super::super::bindings::path_segs;

pub(super) fn path_text(path: &syn::Path) -> String {
    let lead = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{lead}{}", path_segs(path).join("::"))
}

pub(super) fn type_name(ty: &Type) -> String {
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
pub(super) fn pat_bindings(pat: &Pat, out: &mut HashSet<String>) {
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

pub(super) fn member_text(m: &Member) -> String {
    match m {
        Member::Named(i) => i.to_string(),
        Member::Unnamed(i) => i.index.to_string(),
    }
}

pub(super) fn member_span(m: &Member) -> Span {
    match m {
        Member::Named(i) => i.span(),
        Member::Unnamed(i) => i.span,
    }
}

/// A short rendering of the expression a blocking value comes from.
pub(super) fn expr_text(e: &Expr) -> String {
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

//! `/dashboard`: one self-contained HTML page (inline CSS and JS, no external assets)
//! that polls `/api/pool` every 500 ms and draws the budget live.
//!
//! With `DB_BULKHEADS` set it also shows each bulkhead (in use, floor, cap, waiting), so
//! an operator sees which module is at its cap; without bulkheads that panel stays
//! hidden rather than showing an empty box.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page; see `dashboard.html` for what it shows.
const PAGE: &str = include_str!("dashboard.html");

pub(super) async fn handler() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

//! `/dashboard`: one self-contained HTML page (inline CSS and JS, no external assets)
//! that polls `/api/pool` every 500 ms and draws the budget live.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page; see `dashboard.html` for what it shows.
const PAGE: &str = include_str!("dashboard.html");

pub(super) async fn handler() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

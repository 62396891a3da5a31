//! The control routes (`POST /admin/suspend`, `/admin/resume`, `/admin/evict`,
//! `/admin/budget`) against a real MariaDB: who may use them, and what each does to
//! both pools, judged by the pools' own checkouts and by the server's process list.
//!
//! One module per concern: `access` (the token, bad input, where a route does not
//! apply), `suspend` (suspend and resume), `evict`, `resize` (`/admin/budget`); the
//! router with its controls and the HTTP client are in `support`.

mod access;
mod evict;
mod resize;
mod support;
mod suspend;

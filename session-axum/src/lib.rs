//! # sessionkit-axum
//!
//! [axum](https://docs.rs/axum) and [tower](https://docs.rs/tower)
//! integration for [`sessionkit`]: typed sessions where a session is a Rust
//! struct. The same sessions, configuration and HTTP behaviour as
//! `sessionkit-actix`.
//!
//! - [`SessionLayer<T>`] (a tower `Layer`) loads the session lazily (a route
//!   that never touches it costs nothing), saves what changed after the
//!   handler, renews and rotates ids, and writes the id back as cookie and/or
//!   header.
//! - [`Session<T>`] is the extractor; it derefs to
//!   [`sessionkit::Session<T>`], so the accessors from `#[derive(SessionData)]`
//!   and `regenerate` / `reset` / `destroy` work on it.
//! - [`SessionExt`] gives `req.session::<T>()` to `from_fn` middleware and
//!   other services.
//! - [`MapSessionToHeader<T>`] (a tower `Layer`) turns session fields into
//!   request headers for downstream services, after removing any
//!   client-supplied copies.
//!
//! ## Quick start
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sessionkit::{MemoryStore, SessionData, SessionManager};
//! use sessionkit_axum::{Session, SessionLayer};
//!
//! #[derive(SessionData, Default)]
//! struct Counter {
//!     visits: u32,
//! }
//!
//! async fn index(session: Session<Counter>) -> String {
//!     let visits = session.update_visits(|v| { *v += 1; *v });
//!     format!("Visits: {visits}")
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let manager = SessionManager::<Counter>::new(MemoryStore::new());
//!     let app = Router::new()
//!         .route("/", get(index))
//!         .layer(SessionLayer::new(manager));
//!     let listener = tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! ## Layer order
//!
//! axum runs the **last** added `.layer(..)` first. Everything that uses the
//! session ([`MapSessionToHeader`], `from_fn` middleware calling
//! [`SessionExt::session`]) must run inside [`SessionLayer`], so add it
//! before:
//!
//! ```text
//! Router::new().nest("/dashboard", dashboard)
//!     .layer(MapSessionToHeader::<T>::from_derive()) // 3rd: headers from the session
//!     .layer(from_fn(require_auth))                  // 2nd: 401 unless logged in
//!     .layer(SessionLayer::new(manager))             // 1st: the session
//! ```
//!
//! Misordered, the inner code finds no session and answers `500` with a
//! message naming the missing layer.
//!
//! ## Errors
//!
//! | situation | response |
//! |---|---|
//! | the store fails while loading or saving | error handler; default `503`, body `session storage unavailable` |
//! | the store fails, layer built with `on_store_failure(FailurePolicy::Anonymous)` | the handler runs with an anonymous session (`session.degraded()`), nothing saved, no id sent |
//! | other [`sessionkit::SessionError`] (id generation, encoding, `maxSessionBytes`) | error handler; default `500`, body `session error` |
//! | `Session<T>` without `SessionLayer<T>` | `500`, body saying what to add |
//! | malformed, unknown or expired session id | not an error: a fresh session with a new id |
//!
//! Every session error is logged with `tracing::error!`, cause chain
//! included; the client's response stays opaque. See
//! [`SessionLayerBuilder::error_handler`].
//!
//! ## Options
//!
//! Everything about cookies, id lookup and timeouts is the
//! [`sessionkit::Config`] of the manager (see its table of keys and
//! defaults). The layer itself adds:
//!
//! | builder method | default | meaning |
//! |---|---|---|
//! | [`error_handler`](SessionLayerBuilder::error_handler) | [`default_error_handler`] | response for a [`sessionkit::SessionError`] |
//! | [`form_limit`](SessionLayerBuilder::form_limit) | [`DEFAULT_FORM_LIMIT`] (64 KiB) | largest urlencoded body buffered for a `form:` id lookup |
//! | [`on_store_failure`](SessionLayerBuilder::on_store_failure) | `FailurePolicy::Fail` | `Anonymous`: a store failure gives the request an anonymous, never-saved session instead of the error handler's answer |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod extract;
mod header_map;
mod layer;
mod view;

pub use crate::error::{default_error_handler, ErrorContext, ErrorHandlerFn, SessionRejection};
pub use crate::extract::{Session, SessionExt};
pub use crate::header_map::{MapSessionToHeader, MapSessionToHeaderService};
pub use crate::layer::{SessionLayer, SessionLayerBuilder, SessionService, DEFAULT_FORM_LIMIT};

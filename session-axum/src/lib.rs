#![doc = include_str!("../README.md")]
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
//! | concurrent requests kept changing the same fields ([`sessionkit::SessionError::Conflict`]; nothing saved) | error handler; default `409`, body `session changed concurrently; retry` |
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
//! defaults). The layer itself adds (sessionkit's one adapter
//! [`Builder`](sessionkit::adapter::Builder): the actix middleware has the
//! same options):
//!
//! | builder method | default | meaning |
//! |---|---|---|
//! | [`error_handler`](SessionLayerBuilder::error_handler) | [`default_error_handler`] | response for a [`sessionkit::SessionError`] |
//! | [`form_limit`](SessionLayerBuilder::form_limit) | [`DEFAULT_FORM_LIMIT`] (64 KiB) | largest urlencoded body buffered for a `form:` id lookup |
//! | [`on_store_failure`](SessionLayerBuilder::on_store_failure) | `FailurePolicy::Fail` | `Anonymous`: a store failure gives the request an anonymous, never-saved session instead of the error handler's answer |
//! | [`csrf_rejection_handler`](SessionLayerBuilder::csrf_rejection_handler) | [`default_csrf_handler`] (`403`, the reason as text) | response for a request refused by the CSRF check |
//!
//! ## CSRF
//!
//! When the manager was built with [`SessionManagerBuilder::csrf`](sessionkit::SessionManagerBuilder::csrf),
//! the layer checks every `POST`, `PUT`, `PATCH` and `DELETE` before the
//! inner service runs: Fetch Metadata / `Origin` first (on by default),
//! then the token from the `csrf_token` field of a urlencoded form
//! (buffered up to the form limit and handed on to the handler) or the
//! `X-CSRF-Token` header. Handlers put `session.csrf_token()?` in their
//! forms (or in a `<meta name="csrf-token">` tag that scripts copy into
//! the header). A refused request never reaches the handler; it is logged
//! at `warn` (method, path, reason; never a token) and answered by the
//! CSRF rejection handler.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use sessionkit::{Csrf, MemoryStore, SessionManager};
//! use sessionkit_axum::{Session, SessionLayer};
//! use tower::ServiceExt;
//! # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::<Data>::builder(MemoryStore::new())
//!     .csrf(Csrf::default().exempt("/webhook"))
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/form", get(|session: Session<Data>| async move {
//!         let token = session.csrf_token().unwrap_or_default();
//!         format!(r#"<form method="post" action="/cart"><input type="hidden" name="csrf_token" value="{token}"></form>"#)
//!     }))
//!     .route("/cart", post(|| async { "added" }))
//!     .layer(SessionLayer::new(manager));
//! let req = http::Request::post("/cart").body(axum::body::Body::empty())?;
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), 403, "no token");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod extract;
mod header_map;
mod layer;
mod view;

pub use crate::error::{
    default_csrf_handler, default_error_handler, CsrfHandlerFn, ErrorContext, ErrorHandlerFn,
    SessionRejection,
};
pub use crate::extract::{Session, SessionExt};
pub use crate::header_map::{MapSessionToHeader, MapSessionToHeaderService};
pub use crate::layer::{Axum, SessionLayer, SessionLayerBuilder, SessionService};
pub use sessionkit::adapter::DEFAULT_FORM_LIMIT;

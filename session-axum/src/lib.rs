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

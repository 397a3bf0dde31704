#![doc = include_str!("../README.md")]
//!
//! ## Middleware order
//!
//! actix runs the **last** registered `.wrap(..)` first. Everything that uses
//! the session ([`MapSessionToHeader`], guards calling [`SessionExt::session`])
//! must run inside [`SessionMiddleware`], so register it before:
//!
//! ```text
//! web::scope("/dashboard")
//!     .wrap(MapSessionToHeader::<T>::from_derive()) // 3rd: headers from the session
//!     .wrap(from_fn(require_auth))                  // 2nd: 401 unless logged in
//!     .wrap(SessionMiddleware::new(manager))        // 1st: the session
//! ```
//!
//! Misordered, the inner code finds no session and answers `500` with a
//! message naming the missing middleware.
//!
//! ## Errors
//!
//! | situation | response |
//! |---|---|
//! | the store fails while loading or saving | error handler; default `503`, body `session storage unavailable` |
//! | the store fails, middleware built with `on_store_failure(FailurePolicy::Anonymous)` | the handler runs with an anonymous session (`session.degraded()`), nothing saved, no id sent |
//! | concurrent requests kept changing the same fields ([`sessionkit::SessionError::Conflict`]; nothing saved) | error handler; default `409`, body `session changed concurrently; retry` |
//! | other [`sessionkit::SessionError`] (id generation, encoding, `maxSessionBytes`) | error handler; default `500`, body `session error` |
//! | `Session<T>` without `SessionMiddleware<T>` | `500`, body saying what to install |
//! | malformed, unknown or expired session id | not an error: a fresh session with a new id |
//!
//! Every session error is logged with `tracing::error!`, cause chain
//! included; the client's response stays opaque. See
//! [`SessionMiddlewareBuilder::error_handler`].
//!
//! ## Options
//!
//! Everything about cookies, id lookup and timeouts is the
//! [`sessionkit::Config`] of the manager (see its table of keys and
//! defaults). The middleware itself adds:
//!
//! | builder method | default | meaning |
//! |---|---|---|
//! | [`error_handler`](SessionMiddlewareBuilder::error_handler) | [`default_error_handler`] | response for a [`sessionkit::SessionError`] |
//! | [`form_limit`](SessionMiddlewareBuilder::form_limit) | [`DEFAULT_FORM_LIMIT`] (64 KiB) | largest urlencoded body buffered for a `form:` id lookup |
//! | [`on_store_failure`](SessionMiddlewareBuilder::on_store_failure) | `FailurePolicy::Fail` | `Anonymous`: a store failure gives the request an anonymous, never-saved session instead of the error handler's answer |
//! | [`csrf_rejection_handler`](SessionMiddlewareBuilder::csrf_rejection_handler) | [`default_csrf_handler`] (`403`, the reason as text) | response for a request refused by the CSRF check |
//!
//! ## CSRF
//!
//! When the manager was built with [`SessionManagerBuilder::csrf`](sessionkit::SessionManagerBuilder::csrf),
//! the middleware checks every `POST`, `PUT`, `PATCH` and `DELETE` before
//! the handler runs: Fetch Metadata / `Origin` first (on by default), then
//! the token from the `csrf_token` field of a urlencoded form (buffered up
//! to the form limit and handed on to the handler) or the `X-CSRF-Token`
//! header. Handlers put `session.csrf_token()?` in their forms. A refused
//! request never reaches the handler; it is logged at `warn` (method, path,
//! reason; never a token) and answered by the CSRF rejection handler.
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use sessionkit::{Csrf, MemoryStore, SessionManager};
//! use sessionkit_actix::{Session, SessionMiddleware};
//! # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
//! # actix_web::rt::System::new().block_on(async {
//! let manager = SessionManager::<Data>::builder(MemoryStore::new())
//!     .csrf(Csrf::default().exempt("/webhook"))
//!     .build()?;
//! let app = test::init_service(
//!     App::new()
//!         .wrap(SessionMiddleware::new(manager))
//!         .route("/form", web::get().to(|session: Session<Data>| async move {
//!             let token = session.csrf_token().map_err(actix_web::error::ErrorInternalServerError)?;
//!             Ok::<_, actix_web::Error>(HttpResponse::Ok().body(format!(
//!                 r#"<form method="post" action="/cart"><input type="hidden" name="csrf_token" value="{token}"></form>"#
//!             )))
//!         }))
//!         .route("/cart", web::post().to(HttpResponse::Ok)),
//! )
//! .await;
//! let res = test::call_service(&app, test::TestRequest::post().uri("/cart").to_request()).await;
//! assert_eq!(res.status(), 403, "no token");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod extract;
mod header_map;
mod middleware;
mod view;

pub use crate::error::{
    default_csrf_handler, default_error_handler, CsrfHandlerFn, ErrorHandlerFn, SessionRejection,
};
pub use crate::extract::{Session, SessionExt};
pub use crate::header_map::{MapSessionToHeader, MapSessionToHeaderService};
pub use crate::middleware::{Actix, SessionMiddleware, SessionMiddlewareBuilder, SessionService};
pub use sessionkit::adapter::DEFAULT_FORM_LIMIT;

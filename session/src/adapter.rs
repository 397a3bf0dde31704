//! For adapter authors: what a web-framework integration of sessionkit needs,
//! and nothing an application uses.
//!
//! An adapter (`sessionkit-actix`, `sessionkit-axum`) is a thin shell around
//! these pieces; every decision is made here, in functions over plain strings
//! and bytes, so two adapters cannot disagree:
//!
//! | step | call |
//! |---|---|
//! | the builder | [`Builder`]: every option an adapter's builder has, defined once; the adapter's builder *is* `Builder<T, ItsFramework>` and [`Builder::build`] hands the [`Options`] to [`Framework::middleware`] |
//! | per request | [`Options::needs_form`] (buffer a urlencoded body?), then [`Options::begin`] → [`Slot`]; store the slot where handlers find it |
//! | before the inner service | [`Slot::check`] (the CSRF check: go on, a refusal, or a session error, each answered by its handler), then [`Slot::strip_plan`] for `disableSessionForward` |
//! | a handler asks for the session | [`Slot::load`] with a [`RequestView`] of the request; a failure is a [`Rejection`] with the error handler's answer |
//! | after the inner service | [`Slot::end`] with the [`Outcome`] ([`write_response`] the update, or answer with the error handler's response); an inner service that returned an error instead of a response: [`Slot::inner_failed`] |
//! | header mapping (`MapSessionToHeader`) | [`MapHeaders`]: strip [`MapHeaders::is_spoofed`] request headers, load the session, [`MapHeaders::apply`] |
//!
//! Underneath, each step is a pure function an adapter may also call on
//! its own: [`should_buffer_form`], [`csrf_needs_form`], [`check_csrf`],
//! [`StripPlan`], [`end_request`], [`write_response`], [`log_session_error`],
//! and the rejection table [`default_error_response`] /
//! [`default_csrf_response`]:
//!
//! | session error | status | body |
//! |---|---|---|
//! | [`SessionError::Store`](crate::SessionError::Store) (backend down, timeout, corrupt record) | `503` | `session storage unavailable` |
//! | [`SessionError::Conflict`](crate::SessionError::Conflict) (concurrent requests kept changing the same fields; nothing saved) | `409` | `session changed concurrently; retry` |
//! | any other (id generation, encoding, `maxSessionBytes`) | `500` | `session error` |
//! | no adapter middleware for `Session<T>` (a setup bug, [`Rejection::missing`]) | `500` | what to install ([`Framework::missing_middleware`]) |
//! | a [`CsrfRejection`](crate::CsrfRejection) | `403` | the rejection's message |
//!
//! Every answer the core makes is `text/plain; charset=utf-8` with
//! `Cache-Control: no-store` ([`Framework::plain`]).
//!
//! A minimal adapter over a toy request type:
//!
//! ```
//! use std::collections::BTreeMap;
//! use sessionkit::adapter::{end_request, write_response, Outcome, RequestView, ResponseHeaders};
//! use sessionkit::{MemoryStore, SessionManager};
//! # #[derive(sessionkit::SessionData, Default)] struct Counter { visits: u32 }
//!
//! struct Req(BTreeMap<String, String>);
//! impl RequestView for Req {
//!     fn header(&self, name: &str) -> Option<&str> {
//!         self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
//!     }
//! }
//! #[derive(Default)]
//! struct Res(Vec<(String, String)>);
//! impl ResponseHeaders for Res {
//!     fn append(&mut self, name: &str, value: &str) -> bool {
//!         self.0.push((name.to_owned(), value.to_owned()));
//!         true
//!     }
//!     fn insert(&mut self, name: &str, value: &str) -> bool {
//!         self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
//!         self.append(name, value)
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::<Counter>::new(MemoryStore::new());
//! let pending = manager.begin();
//! // The handler:
//! let session = pending.load(&Req(BTreeMap::new())).await?;
//! session.update_visits(|v| *v += 1);
//! // After the handler:
//! let update = end_request(&pending, Outcome::Response(200)).await?;
//! let mut res = Res::default();
//! write_response(update, &mut res);
//! assert!(res.0.iter().any(|(n, v)| n == "set-cookie" && v.starts_with("session_id=")));
//! assert!(res.0.contains(&("cache-control".to_owned(), "no-store".to_owned())));
//! # Ok::<(), sessionkit::SessionError>(()) }).unwrap();
//! ```

mod builder;
mod csrf;
mod framework;
mod headers;
mod rejection;
mod request;
mod response;
mod slot;

pub use self::builder::{Builder, Options, BUILDER_OPTIONS, DEFAULT_FORM_LIMIT};
pub use self::csrf::{check_csrf, csrf_needs_form, default_csrf_response, log_csrf_rejection};
pub use self::framework::{
    default_csrf_handler, default_error_handler, CsrfHandler, ErrorHandler, Framework,
};
pub use self::headers::MapHeaders;
pub use self::rejection::{default_error_response, log_session_error, Rejection};
pub use self::request::{
    cookie_in_header, is_urlencoded, should_buffer_form, strip_query_param, StripPlan,
};
pub use self::response::{end_request, write_response, Outcome, ResponseHeaders};
pub use self::slot::{Checked, Ending, Slot};

pub use crate::csrf::{
    decide as decide_csrf, verify as verify_csrf, CsrfRequest, Step as CsrfStep,
};
pub use crate::extractor::{
    find_cookie, find_urlencoded, ExtractFn, Extracted, Location, RequestView, SourceKind,
};
pub use crate::header_map::{is_valid_header_name, is_valid_header_value, normalize_header_name};
pub use crate::lifecycle::manager::{Incoming, PendingSession, ResponseUpdate};

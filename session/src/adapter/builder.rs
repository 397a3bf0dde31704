//! The options every adapter's builder has, defined once: the builder and
//! what it builds.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{
    csrf_needs_form, default_csrf_handler, default_error_handler, should_buffer_form, CsrfHandler,
    ErrorHandler, Framework, Slot,
};
use crate::csrf::CsrfRejection;
use crate::data::SessionData;
use crate::degraded::FailurePolicy;
use crate::error::SessionError;
use crate::extractor::RequestView;
use crate::lifecycle::manager::SessionManager;

/// The largest urlencoded body buffered by default to find a `form:` session
/// id or the CSRF token's form field (64 KiB).
pub const DEFAULT_FORM_LIMIT: usize = 64 * 1024;

/// The name of every option method of [`Builder`], in the order of the
/// docs tables (the builder's and each adapter crate's). A unit test keeps
/// it equal to the builder's methods; the workspace's tests check both
/// adapters against it.
pub const BUILDER_OPTIONS: &[&str] = &[
    "error_handler",
    "form_limit",
    "on_store_failure",
    "csrf_rejection_handler",
];

/// The builder of an adapter's middleware: every option, for every framework.
///
/// Each adapter's builder is this type (actix:
/// `SessionMiddlewareBuilder<T> = Builder<T, Actix>`, from
/// `SessionMiddleware::builder`; axum: `SessionLayerBuilder<T> = Builder<T,
/// Axum>`, from `SessionLayer::builder`), so an option added here is an
/// option of both, with one definition and one doc. [`Builder::build`] makes
/// the framework's middleware ([`Framework::middleware`]).
///
/// | method | default | meaning |
/// |---|---|---|
/// | [`error_handler`](Builder::error_handler) | [`default_error_handler`] (the rejection table: `503`, `409` or `500`, opaque) | response for a [`SessionError`] |
/// | [`form_limit`](Builder::form_limit) | [`DEFAULT_FORM_LIMIT`] (64 KiB) | largest urlencoded body buffered for a `form:` id lookup or the CSRF token's form field |
/// | [`on_store_failure`](Builder::on_store_failure) | [`FailurePolicy::Fail`] | `Anonymous`: a store failure gives the request an anonymous, never-saved session instead of the error handler's answer |
/// | [`csrf_rejection_handler`](Builder::csrf_rejection_handler) | [`default_csrf_handler`] (`403`, the reason as text) | response for a request refused by the CSRF check |
///
/// [`BUILDER_OPTIONS`] lists these methods; the adapters' docs tables are
/// checked against it.
///
/// # What the built middleware does
///
/// The same in every adapter (actix-web's `SessionMiddleware`, axum's
/// `SessionLayer`), since each only runs these pieces ([`Slot`]):
///
/// For every request it puts a not-yet-loaded session into the request.
/// Nothing is read from the store until a handler, a middleware inside it
/// or `MapSessionToHeader` asks for the session, so a route that never
/// touches it costs no store access and gets no `Set-Cookie`. After the
/// inner service, the session is committed: changed fields are saved, the
/// idle timeout refreshed, the id rotated when auto-renew is due, and the
/// response gets
///
/// - a `Set-Cookie` (every configured attribute) when the extractor has a
///   cookie source, a response header of the same name when it has a header
///   source, nothing for read-only sources (query, form, path, custom
///   [`SourceKind::Other`](crate::adapter::SourceKind::Other)); an id read
///   from a read-only source is never promoted into a cookie;
/// - a removal cookie (same name, Path, Domain, Secure) or an empty header
///   after `reset`/`destroy`;
/// - `Cache-Control: no-store` whenever it sets or clears a session id,
///   replacing any `Cache-Control` the handler set (a shared cache must
///   never keep a session id).
///
/// A [`SessionError`] (store down, session too large, concurrent changes,
/// …) while loading or saving is logged with `tracing::error!` and answered
/// by the error handler (default: the opaque rejection table, `503` for
/// store errors, `409` for a conflict, `500` otherwise), unless the
/// middleware was built with [`FailurePolicy::Anonymous`]
/// ([`Builder::on_store_failure`]): then a store failure is logged with
/// `tracing::warn!` and the request runs with an anonymous session. When
/// saving fails after the handler ran, the handler's response is replaced:
/// the client must not believe a change was kept. An inner service that
/// fails without a response commits nothing; if it had loaded the session,
/// that is logged at `warn` with the error.
///
/// With CSRF on (the manager was built with
/// [`SessionManagerBuilder::csrf`](crate::SessionManagerBuilder::csrf)),
/// every `POST`, `PUT`, `PATCH` and `DELETE` is checked before the inner
/// service runs and a refused one is answered by the CSRF rejection handler
/// (default `403`).
///
/// `disableSessionForward: true` reads the id eagerly and removes it from
/// the request before any inner service sees it: the session cookie(s) from
/// the `Cookie` header (other cookies stay), the session header(s) (in any
/// case and punctuation), and the query parameter when the id came from the
/// query. Form and path ids cannot be removed and are left as they are.
#[must_use]
pub struct Builder<T: SessionData, F: Framework> {
    manager: SessionManager<T>,
    errors: Arc<ErrorHandler<F>>,
    csrf_rejections: Arc<CsrfHandler<F>>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
}

impl<T: SessionData, F: Framework> fmt::Debug for Builder<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("manager", &self.manager)
            .field("form_limit", &self.form_limit)
            .field("on_store_failure", &self.on_store_failure)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData, F: Framework> Builder<T, F> {
    /// A builder for `manager`'s middleware with every option at its default.
    pub fn new(manager: SessionManager<T>) -> Self {
        Self {
            manager,
            errors: Arc::new(default_error_handler::<F>),
            csrf_rejections: Arc::new(default_csrf_handler::<F>),
            form_limit: DEFAULT_FORM_LIMIT,
            on_store_failure: FailurePolicy::Fail,
        }
    }

    /// Answers [`SessionError`]s with `handler` instead of
    /// [`default_error_handler`]. The error is logged with `tracing::error!`,
    /// cause chain included, before `handler` runs. Keep the response
    /// opaque: the client should not learn about your backend.
    pub fn error_handler(
        mut self,
        handler: impl Fn(&SessionError, &F::Request) -> F::Response + Send + Sync + 'static,
    ) -> Self {
        self.errors = Arc::new(handler);
        self
    }

    /// The largest urlencoded body buffered to find a `form:` session id
    /// or the CSRF token's form field (default [`DEFAULT_FORM_LIMIT`]). A
    /// larger body is passed to the handler untouched and the form source
    /// finds nothing. Bodies are buffered only when the extractor reads a
    /// form field, or the CSRF check needs the token from the form.
    pub fn form_limit(mut self, bytes: usize) -> Self {
        self.form_limit = bytes;
        self
    }

    /// What a request gets when the store fails: the error handler's answer
    /// ([`FailurePolicy::Fail`], the default) or an anonymous session that
    /// is never saved and sets no id ([`FailurePolicy::Anonymous`]; handlers
    /// can ask `session.degraded()`; the failure is logged with
    /// `tracing::warn!`). Put public routes under a middleware with
    /// `Anonymous` to keep them up while the store is down.
    pub fn on_store_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_store_failure = policy;
        self
    }

    /// Answers requests refused by the CSRF check (the manager's
    /// [`Csrf`](crate::Csrf)) with `handler` instead of
    /// [`default_csrf_handler`]. The refusal is logged at `warn` (method,
    /// path, reason; never a token) before `handler` runs; the handler of
    /// the route never runs.
    pub fn csrf_rejection_handler(
        mut self,
        handler: impl Fn(&CsrfRejection, &F::Request) -> F::Response + Send + Sync + 'static,
    ) -> Self {
        self.csrf_rejections = Arc::new(handler);
        self
    }

    /// The framework's middleware.
    pub fn build(self) -> F::Middleware<T> {
        F::middleware(Arc::new(Options {
            manager: self.manager,
            errors: self.errors,
            csrf_rejections: self.csrf_rejections,
            form_limit: self.form_limit,
            on_store_failure: self.on_store_failure,
            _framework: PhantomData,
        }))
    }
}

/// What a [`Builder`] built: the manager and every option, shared by all
/// requests of one middleware.
pub struct Options<T: SessionData, F: Framework> {
    manager: SessionManager<T>,
    pub(super) errors: Arc<ErrorHandler<F>>,
    pub(super) csrf_rejections: Arc<CsrfHandler<F>>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
    _framework: PhantomData<fn() -> F>,
}

impl<T: SessionData, F: Framework> fmt::Debug for Options<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("manager", &self.manager)
            .field("form_limit", &self.form_limit)
            .field("on_store_failure", &self.on_store_failure)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData, F: Framework> Options<T, F> {
    /// The manager (configuration, store, extractor).
    #[must_use]
    pub fn manager(&self) -> &SessionManager<T> {
        &self.manager
    }

    /// The largest urlencoded body to buffer ([`Builder::form_limit`]).
    #[must_use]
    pub fn form_limit(&self) -> usize {
        self.form_limit
    }

    /// What a store failure gives ([`Builder::on_store_failure`]).
    #[must_use]
    pub fn on_store_failure(&self) -> FailurePolicy {
        self.on_store_failure
    }

    /// Whether this request's urlencoded body must be buffered (at most
    /// [`Options::form_limit`] bytes, given back to the handler either way)
    /// before [`Options::begin`]: for a `form:` id lookup
    /// ([`should_buffer_form`]) or for the CSRF token's form field
    /// ([`csrf_needs_form`]).
    #[must_use]
    pub fn needs_form(&self, req: &dyn RequestView, method: &str, path: &str) -> bool {
        should_buffer_form(
            self.manager.extractor(),
            req.header("content-type"),
            req.header("content-length"),
            self.form_limit,
        ) || csrf_needs_form(self.manager.csrf(), method, path, req, self.form_limit)
    }

    /// This request's session, not loaded yet, with the configured failure
    /// policy: put it where the request's handlers find it.
    #[must_use]
    pub fn begin(self: &Arc<Self>) -> Slot<T, F> {
        Slot::new(
            self.manager
                .begin()
                .with_failure_policy(self.on_store_failure),
            Arc::clone(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option method of `Builder` (a `pub fn` taking `mut self`) is
    /// in [`BUILDER_OPTIONS`], in order, and the docs table lists the same:
    /// an option added without its entry fails here, and the workspace's
    /// tests check both adapters' docs against the list.
    #[test]
    fn options_lists_every_option_method() {
        let source = include_str!("builder.rs");
        let body = source
            .split("impl<T: SessionData, F: Framework> Builder<T, F> {")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .unwrap_or_default();
        let methods: Vec<&str> = body
            .split("    pub fn ")
            .skip(1)
            .filter(|f| {
                f.split(')')
                    .next()
                    .is_some_and(|args| args.contains("mut self"))
            })
            .filter_map(|f| f.split('(').next())
            .collect();
        assert_eq!(methods, BUILDER_OPTIONS);
        let table: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("/// | [`"))
            .filter_map(|row| row.split("`]").next())
            .collect();
        assert_eq!(table, BUILDER_OPTIONS);
    }
}

//! `SessionLayer<T>`: one lazily loaded session per request, committed after
//! the inner service, with the id written back as the extractor says.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::BodyExt;
use sessionkit::adapter::{
    check_csrf, csrf_needs_form, end_request, log_csrf_rejection, should_buffer_form,
    write_response, Outcome, PendingSession, ResponseHeaders, StripPlan,
};
use sessionkit::store::SessionStore;
use sessionkit::{
    Config, ConfigError, CsrfRejection, FailurePolicy, SessionData, SessionError, SessionManager,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{
    default_csrf_handler, default_error_handler, handle, CsrfHandlerFn, ErrorContext,
    ErrorHandlerFn,
};
use crate::view::{AxumView, BufferedForm};

/// The largest urlencoded body buffered by default to find a `form:` session id (64 KiB).
pub const DEFAULT_FORM_LIMIT: usize = 64 * 1024;

/// What a request's extensions hold for the session of type `T`.
pub(crate) struct Slot<T: SessionData> {
    pub(crate) pending: PendingSession<T>,
    pub(crate) errors: Arc<ErrorHandlerFn>,
}

/// Session layer for sessions of type `T`: a tower [`Layer`].
///
/// For every request it puts a not-yet-loaded session in the request's
/// extensions. Nothing is read from the store until the handler (or a
/// middleware, or [`MapSessionToHeader`](crate::MapSessionToHeader)) asks
/// for the session, so a route that never touches it costs no store access
/// and gets no `Set-Cookie`. After the inner service, the session is
/// committed: changed fields are saved, the idle timeout refreshed, the id
/// rotated when auto-renew is due, and the response gets
///
/// - a `Set-Cookie` (every configured attribute) when the extractor has a
///   cookie source, a response header of the same name when it has a header
///   source, nothing for read-only sources (query, form, path, custom
///   `SourceKind::Other`); an id read from a read-only source is never
///   promoted into a cookie;
/// - a removal cookie (same name, Path, Domain, Secure) or an empty header
///   after `reset`/`destroy`;
/// - `Cache-Control: no-store` whenever it sets or clears a session id,
///   replacing any `Cache-Control` the handler set.
///
/// A [`SessionError`] (store down, session too large, …) while loading or
/// saving is logged with `tracing::error!` and answered by the error handler
/// (default [`default_error_handler`]: opaque 503 for store errors, 500
/// otherwise), unless the layer was built with
/// [`FailurePolicy::Anonymous`](sessionkit::FailurePolicy) (see
/// [`SessionLayerBuilder::on_store_failure`]): then a store failure is
/// logged with `tracing::warn!` and the request runs with an anonymous
/// session. When saving fails after the handler ran, the handler's
/// response is replaced: the client must not believe a change was kept.
///
/// With CSRF on (the manager was built with
/// [`SessionManagerBuilder::csrf`](sessionkit::SessionManagerBuilder::csrf)),
/// every `POST`, `PUT`, `PATCH` and `DELETE` is checked before the inner service
/// runs and a refused one is answered `403` (see the crate docs, "CSRF").
///
/// `disableSessionForward: true` reads the id eagerly and removes it from the
/// request before the inner service sees it: the session cookie(s) from the
/// `Cookie` header (other cookies stay), the session header(s) (also their
/// `_`/case variants), and the query parameter when the id came from the
/// query. Form and path ids cannot be removed and are left as they are.
///
/// Add it with `Router::layer` (it then runs for every route, after routing,
/// so `param:` lookups work); a layer that uses the session must be added
/// *before* it (axum runs the last added layer first). The layer is cheap to
/// clone.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionkit::{Config, MemoryStore, SessionManager};
/// use sessionkit_axum::{Session, SessionLayer};
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
///
/// let config = Config::builder().cookie_http_only(true).build()?;
/// let manager = SessionManager::<Data>::builder(MemoryStore::new()).config(config).build()?;
/// let app: Router = Router::new()
///     .route("/", get(|session: Session<Data>| async move { session.id().to_string() }))
///     .layer(SessionLayer::new(manager));
/// # Ok::<(), sessionkit::ConfigError>(())
/// ```
pub struct SessionLayer<T: SessionData> {
    shared: Arc<Shared<T>>,
}

struct Shared<T: SessionData> {
    manager: SessionManager<T>,
    errors: Arc<ErrorHandlerFn>,
    csrf_rejections: Arc<CsrfHandlerFn>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
}

impl<T: SessionData> Clone for SessionLayer<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: SessionData> fmt::Debug for SessionLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.shared.manager)
            .field("form_limit", &self.shared.form_limit)
            .field("on_store_failure", &self.shared.on_store_failure)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionLayer<T> {
    /// The layer for `manager`, with the default error handler.
    #[must_use]
    pub fn new(manager: SessionManager<T>) -> Self {
        Self::builder(manager).build()
    }

    /// The layer for a deserialized (or built) [`Config`] and a store.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    ///
    /// ```
    /// use sessionkit::{Config, MemoryStore};
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let config: Config = serde_norway::from_str("cookieHTTPOnly: true\nkeyLookup: header:X-Session-Token\n")?;
    /// let layer = sessionkit_axum::SessionLayer::<Data>::from_config(config, MemoryStore::new())?;
    /// # let _ = layer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: Config, store: impl SessionStore) -> Result<Self, ConfigError> {
        let manager = SessionManager::builder(store).config(config).build()?;
        Ok(Self::new(manager))
    }

    /// A builder, to set the error handler, the form buffering limit or the
    /// policy on store failures.
    pub fn builder(manager: SessionManager<T>) -> SessionLayerBuilder<T> {
        SessionLayerBuilder {
            manager,
            errors: Arc::new(default_error_handler),
            csrf_rejections: Arc::new(default_csrf_handler),
            form_limit: DEFAULT_FORM_LIMIT,
            on_store_failure: FailurePolicy::Fail,
        }
    }

    /// The manager (configuration, store, extractor).
    #[must_use]
    pub fn manager(&self) -> &SessionManager<T> {
        &self.shared.manager
    }
}

/// Builds a [`SessionLayer`].
///
/// ```
/// use axum::response::IntoResponse;
/// use http::StatusCode;
/// use sessionkit::{MemoryStore, SessionError, SessionManager};
/// use sessionkit_axum::SessionLayer;
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// let layer = SessionLayer::builder(SessionManager::<Data>::new(MemoryStore::new()))
///     .error_handler(|error, _req| match error {
///         SessionError::Store(_) => {
///             (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "5")], "try again shortly")
///                 .into_response()
///         }
///         _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
///     })
///     .form_limit(16 * 1024)
///     .build();
/// # let _ = layer;
/// ```
#[must_use]
pub struct SessionLayerBuilder<T: SessionData> {
    manager: SessionManager<T>,
    errors: Arc<ErrorHandlerFn>,
    csrf_rejections: Arc<CsrfHandlerFn>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
}

impl<T: SessionData> fmt::Debug for SessionLayerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("manager", &self.manager)
            .field("form_limit", &self.form_limit)
            .field("on_store_failure", &self.on_store_failure)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionLayerBuilder<T> {
    /// Answers [`SessionError`]s with `handler` instead of [`default_error_handler`].
    /// The error is logged with `tracing::error!` before `handler` runs.
    /// Keep the response opaque: the client should not learn about your backend.
    pub fn error_handler(
        mut self,
        handler: impl Fn(&SessionError, &ErrorContext) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.errors = Arc::new(handler);
        self
    }

    /// Answers requests refused by the CSRF check (the manager's
    /// [`Csrf`](sessionkit::Csrf)) with `handler` instead of
    /// [`default_csrf_handler`]. The refusal is logged at `warn` before
    /// `handler` runs; the inner service never runs.
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use http::StatusCode;
    /// use sessionkit::{Csrf, MemoryStore, SessionManager};
    /// use sessionkit_axum::SessionLayer;
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let manager = SessionManager::<Data>::builder(MemoryStore::new()).csrf(Csrf::default()).build()?;
    /// let layer = SessionLayer::builder(manager)
    ///     .csrf_rejection_handler(|rejection, _req| {
    ///         (StatusCode::FORBIDDEN, format!("<p>{rejection}</p>")).into_response()
    ///     })
    ///     .build();
    /// # let _ = layer;
    /// # Ok::<(), sessionkit::ConfigError>(())
    /// ```
    pub fn csrf_rejection_handler(
        mut self,
        handler: impl Fn(&CsrfRejection, &ErrorContext) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.csrf_rejections = Arc::new(handler);
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
    /// can ask `session.degraded()`). Put public routes under a layer with
    /// `Anonymous` to keep them up while the store is down.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use sessionkit::{FailurePolicy, MemoryStore, SessionManager};
    /// use sessionkit_axum::{Session, SessionLayer};
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let manager = SessionManager::<Data>::new(MemoryStore::new());
    /// // Public pages: served with an anonymous session while the store is down.
    /// let public = Router::new()
    ///     .route("/public", get(|session: Session<Data>| async move {
    ///         if session.degraded() { "hello, stranger" } else { "hello" }
    ///     }))
    ///     .layer(
    ///         SessionLayer::builder(manager.clone())
    ///             .on_store_failure(FailurePolicy::Anonymous)
    ///             .build(),
    ///     );
    /// // Everything else: the error handler's 503 while the store is down.
    /// let private = Router::new()
    ///     .route("/cart", get(|session: Session<Data>| async move { session.visits().to_string() }))
    ///     .layer(SessionLayer::new(manager));
    /// let app: Router = public.merge(private);
    /// # let _ = app;
    /// ```
    pub fn on_store_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_store_failure = policy;
        self
    }

    /// The layer.
    pub fn build(self) -> SessionLayer<T> {
        SessionLayer {
            shared: Arc::new(Shared {
                manager: self.manager,
                errors: self.errors,
                csrf_rejections: self.csrf_rejections,
                form_limit: self.form_limit,
                on_store_failure: self.on_store_failure,
            }),
        }
    }
}

impl<S, T: SessionData> Layer<S> for SessionLayer<T> {
    type Service = SessionService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`SessionLayer`] wraps around the inner service.
pub struct SessionService<S, T: SessionData> {
    inner: S,
    shared: Arc<Shared<T>>,
}

impl<S: Clone, T: SessionData> Clone for SessionService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, T: SessionData> fmt::Debug for SessionService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, B, ResBody, T> Service<Request<B>> for SessionService<S, T>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
    T: SessionData,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let mut req = req.map(Body::new);
            if req.extensions().get::<Arc<Slot<T>>>().is_some() {
                // An outer SessionLayer<T> already manages this request.
                return inner.call(req).await.map(|res| res.map(Body::new));
            }
            let manager = &shared.manager;
            let buffer = {
                let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
                should_buffer_form(
                    manager.extractor(),
                    header(CONTENT_TYPE),
                    header(CONTENT_LENGTH),
                    shared.form_limit,
                ) || csrf_needs_form(
                    manager.csrf(),
                    req.method().as_str(),
                    req.uri().path(),
                    &AxumView::of_request(&req),
                    shared.form_limit,
                )
            };
            if buffer {
                buffer_form(&mut req, shared.form_limit).await;
            }
            let slot = Arc::new(Slot {
                pending: manager.begin().with_failure_policy(shared.on_store_failure),
                errors: Arc::clone(&shared.errors),
            });
            req.extensions_mut().insert(Arc::clone(&slot));
            let checked = check_csrf(
                &slot.pending,
                &AxumView::of_request(&req),
                req.method().as_str(),
                req.uri().path(),
            )
            .await;
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(rejection)) => {
                    log_csrf_rejection(&rejection, req.method().as_str(), req.uri().path());
                    let context = ErrorContext::new(req.method().clone(), req.uri().clone());
                    let mut res = (shared.csrf_rejections)(&rejection, &context);
                    let ended =
                        end_request(&slot.pending, Outcome::Response(res.status().as_u16()));
                    return Ok(match ended.await {
                        Ok(update) => {
                            write_response(update, &mut Headers(res.headers_mut()));
                            res
                        }
                        Err(error) => handle(&shared.errors, &error, &context),
                    });
                }
                Err(error) => {
                    let context = ErrorContext::new(req.method().clone(), req.uri().clone());
                    return Ok(handle(&shared.errors, &error, &context));
                }
            }
            if manager.config().disable_session_forward {
                let incoming = slot.pending.capture(&AxumView::of_request(&req));
                let plan = StripPlan::new(manager.extractor(), incoming);
                strip_session_id(&mut req, &plan);
            }
            let context = ErrorContext::new(req.method().clone(), req.uri().clone());

            let res = inner.call(req).await;
            let outcome = match &res {
                Ok(res) => Outcome::Response(res.status().as_u16()),
                Err(_) => Outcome::Error,
            };
            let update = end_request(&slot.pending, outcome).await;
            let res = match res {
                Ok(res) => res,
                Err(error) => {
                    if slot.pending.loaded().is_some() {
                        tracing::warn!(
                            "an inner service failed without a response; the session was not saved"
                        );
                    }
                    return Err(error);
                }
            };
            match update {
                Ok(update) => {
                    let mut res = res.map(Body::new);
                    write_response(update, &mut Headers(res.headers_mut()));
                    Ok(res)
                }
                Err(error) => Ok(handle(&shared.errors, &error, &context)),
            }
        })
    }
}

/// The response headers as [`write_response`] edits them.
pub(crate) struct Headers<'a>(pub(crate) &'a mut HeaderMap);

impl ResponseHeaders for Headers<'_> {
    fn append(&mut self, name: &str, value: &str) -> bool {
        match (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            (Ok(name), Ok(value)) => {
                self.0.append(name, value);
                true
            }
            _ => false,
        }
    }

    fn insert(&mut self, name: &str, value: &str) -> bool {
        match (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            (Ok(name), Ok(value)) => {
                self.0.insert(name, value);
                true
            }
            _ => false,
        }
    }
}

/// Reads a urlencoded body (up to `limit` bytes) so a `form:` extractor can
/// see it, and puts it back for the handler.
async fn buffer_form(req: &mut Request<Body>, limit: usize) {
    let mut body = std::mem::take(req.body_mut());
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let item = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(chunk) if buf.len() + chunk.len() <= limit => {
                    buf.extend_from_slice(&chunk);
                    continue;
                }
                Ok(chunk) => Ok(chunk),
                // Trailers: not part of a form.
                Err(_) => continue,
            },
            Err(error) => Err(error),
        };
        // Too large, or the body failed: give the handler everything read
        // so far followed by the rest, untouched.
        let head = stream::iter([Ok(buf.freeze()), item]);
        *req.body_mut() = Body::from_stream(head.chain(body.into_data_stream()));
        return;
    }
    let form = buf.freeze();
    req.extensions_mut().insert(BufferedForm(form.clone()));
    *req.body_mut() = Body::from(form);
}

/// `disableSessionForward`: removes the session id from the request.
fn strip_session_id(req: &mut Request<Body>, plan: &StripPlan) {
    let headers = req.headers_mut();
    if plan.strips_cookies() {
        let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
        headers.remove(COOKIE);
        for value in values {
            if let Some(kept) = plan.cookie_header(value.as_bytes()) {
                if let Ok(value) = HeaderValue::from_bytes(&kept) {
                    headers.append(COOKIE, value);
                }
            }
        }
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| plan.strips_header(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    let target = req.uri().path_and_query().map(PathAndQuery::as_str);
    if let Some(stripped) = target.and_then(|pq| plan.path_and_query(pq)) {
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(stripped) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

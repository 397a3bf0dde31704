//! `SessionMiddleware<T>`: one lazily loaded session per request, committed
//! after the handler, with the id written back as the extractor says.

use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, COOKIE,
};
use actix_web::http::uri::{PathAndQuery, Uri};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use futures_util::stream::{self, StreamExt};
use sessionkit::adapter::{
    check_csrf, csrf_needs_form, end_request, log_csrf_rejection, should_buffer_form,
    write_response, Outcome, PendingSession, ResponseHeaders, StripPlan,
};
use sessionkit::store::SessionStore;
use sessionkit::{
    Config, ConfigError, CsrfRejection, FailurePolicy, SessionData, SessionError, SessionManager,
};

use crate::error::{
    default_csrf_handler, default_error_handler, handle, CsrfHandlerFn, ErrorHandlerFn,
};
use crate::view::{ActixView, BufferedForm};

/// The largest urlencoded body buffered by default to find a `form:` session id (64 KiB).
pub const DEFAULT_FORM_LIMIT: usize = 64 * 1024;

/// What a request's extensions hold for the session of type `T`.
pub(crate) struct Slot<T: SessionData> {
    pub(crate) pending: PendingSession<T>,
    pub(crate) errors: Arc<ErrorHandlerFn>,
}

/// Session middleware for sessions of type `T`.
///
/// For every request it puts a not-yet-loaded session in the request's
/// extensions. Nothing is read from the store until the handler (or a guard,
/// or [`MapSessionToHeader`](crate::MapSessionToHeader)) asks for the
/// session, so a route that never touches it costs no store access and gets
/// no `Set-Cookie`. After the handler, the session is committed: changed
/// fields are saved, the idle timeout refreshed, the id rotated when
/// auto-renew is due, and the response gets
///
/// - a `Set-Cookie` (every configured attribute) when the extractor has a
///   cookie source, a response header of the same name when it has a header
///   source, nothing for read-only sources (query, form, path, custom
///   `SourceKind::Other`); an id read from a read-only source is never promoted
///   into a cookie;
/// - a removal cookie (same name, Path, Domain, Secure) or an empty header
///   after `reset`/`destroy`;
/// - `Cache-Control: no-store` whenever it sets or clears a session id,
///   replacing any `Cache-Control` the handler set (a shared cache must
///   never keep a session id).
///
/// A [`SessionError`] (store down, session too large, …) while loading or
/// saving is logged with `tracing::error!` and answered by the error handler
/// (default [`default_error_handler`]: opaque 503 for store errors, 500
/// otherwise), unless the middleware was built with
/// [`FailurePolicy::Anonymous`](sessionkit::FailurePolicy) (see
/// [`SessionMiddlewareBuilder::on_store_failure`]): then a store failure is
/// logged with `tracing::warn!` and the request runs with an anonymous
/// session. When saving fails after the handler ran, the handler's
/// response is replaced: the client must not believe a change was kept.
///
/// With CSRF on (the manager was built with
/// [`SessionManagerBuilder::csrf`](sessionkit::SessionManagerBuilder::csrf)),
/// every `POST`, `PUT`, `PATCH` and `DELETE` is checked before the handler
/// runs and a refused one is answered `403` (see the crate docs, "CSRF").
///
/// `disableSessionForward: true` reads the id eagerly and removes it from the
/// request before any inner service sees it: the session cookie(s) from the
/// `Cookie` header (other cookies stay), the session header(s) (also their
/// `_`/case variants), and the query parameter when the id came from the
/// query. Form and path ids cannot be removed and are left as they are.
///
/// The middleware is `Send + Sync` and cheap to clone: build it once and
/// clone it into `HttpServer::new`'s factory.
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use sessionkit::{Config, MemoryStore, SessionManager};
/// use sessionkit_actix::{Session, SessionMiddleware};
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
///
/// let config = Config::builder().cookie_http_only(true).build()?;
/// let manager = SessionManager::<Data>::builder(MemoryStore::new()).config(config).build()?;
/// let app = App::new()
///     .wrap(SessionMiddleware::new(manager))
///     .route("/", web::get().to(|session: Session<Data>| async move {
///         HttpResponse::Ok().body(session.id().as_str().to_owned())
///     }));
/// # let _ = app;
/// # Ok::<(), sessionkit::ConfigError>(())
/// ```
pub struct SessionMiddleware<T: SessionData> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: SessionData> {
    manager: SessionManager<T>,
    errors: Arc<ErrorHandlerFn>,
    csrf_rejections: Arc<CsrfHandlerFn>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
}

impl<T: SessionData> Clone for SessionMiddleware<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: SessionData> fmt::Debug for SessionMiddleware<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("manager", &self.inner.manager)
            .field("form_limit", &self.inner.form_limit)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionMiddleware<T> {
    /// The middleware for `manager`, with the default error handler.
    #[must_use]
    pub fn new(manager: SessionManager<T>) -> Self {
        Self::builder(manager).build()
    }

    /// The middleware for a deserialized (or built) [`Config`] and a store.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    ///
    /// ```
    /// use sessionkit::{Config, MemoryStore};
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let config: Config = serde_norway::from_str("cookieHTTPOnly: true\nkeyLookup: header:X-Session-Token\n")?;
    /// let middleware = sessionkit_actix::SessionMiddleware::<Data>::from_config(config, MemoryStore::new())?;
    /// # let _ = middleware;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: Config, store: impl SessionStore) -> Result<Self, ConfigError> {
        let manager = SessionManager::builder(store).config(config).build()?;
        Ok(Self::new(manager))
    }

    /// A builder, to set the error handler or the form buffering limit.
    pub fn builder(manager: SessionManager<T>) -> SessionMiddlewareBuilder<T> {
        SessionMiddlewareBuilder {
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
        &self.inner.manager
    }
}

/// Builds a [`SessionMiddleware`].
///
/// ```
/// use actix_web::HttpResponse;
/// use sessionkit::{MemoryStore, SessionError, SessionManager};
/// use sessionkit_actix::SessionMiddleware;
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// let middleware = SessionMiddleware::builder(SessionManager::<Data>::new(MemoryStore::new()))
///     .error_handler(|error, _req| match error {
///         SessionError::Store(_) => HttpResponse::ServiceUnavailable()
///             .insert_header(("Retry-After", "5"))
///             .body("try again shortly"),
///         _ => HttpResponse::InternalServerError().finish(),
///     })
///     .form_limit(16 * 1024)
///     .build();
/// # let _ = middleware;
/// ```
#[must_use]
pub struct SessionMiddlewareBuilder<T: SessionData> {
    manager: SessionManager<T>,
    errors: Arc<ErrorHandlerFn>,
    csrf_rejections: Arc<CsrfHandlerFn>,
    form_limit: usize,
    on_store_failure: FailurePolicy,
}

impl<T: SessionData> fmt::Debug for SessionMiddlewareBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddlewareBuilder")
            .field("manager", &self.manager)
            .field("form_limit", &self.form_limit)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionMiddlewareBuilder<T> {
    /// Answers [`SessionError`]s with `handler` instead of [`default_error_handler`].
    /// The error is logged with `tracing::error!` before `handler` runs.
    /// Keep the response opaque: the client should not learn about your backend.
    pub fn error_handler(
        mut self,
        handler: impl Fn(&SessionError, &HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.errors = Arc::new(handler);
        self
    }

    /// Answers requests refused by the CSRF check (the manager's
    /// [`Csrf`](sessionkit::Csrf)) with `handler` instead of
    /// [`default_csrf_handler`]. The refusal is logged at `warn` before
    /// `handler` runs; the handler of the route never runs.
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use sessionkit::{Csrf, MemoryStore, SessionManager};
    /// use sessionkit_actix::SessionMiddleware;
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let manager = SessionManager::<Data>::builder(MemoryStore::new()).csrf(Csrf::default()).build()?;
    /// let middleware = SessionMiddleware::builder(manager)
    ///     .csrf_rejection_handler(|rejection, _req| {
    ///         HttpResponse::Forbidden().body(format!("<p>{rejection}</p>"))
    ///     })
    ///     .build();
    /// # let _ = middleware;
    /// # Ok::<(), sessionkit::ConfigError>(())
    /// ```
    pub fn csrf_rejection_handler(
        mut self,
        handler: impl Fn(&CsrfRejection, &HttpRequest) -> HttpResponse + Send + Sync + 'static,
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
    /// can ask `session.degraded()`). Wrap public routes in a middleware with
    /// `Anonymous` to keep them up while the store is down.
    ///
    /// ```
    /// use sessionkit::{FailurePolicy, MemoryStore, SessionManager};
    /// use sessionkit_actix::SessionMiddleware;
    /// # #[derive(sessionkit::SessionData, Default)]
    /// # struct Data { visits: u32 }
    /// let manager = SessionManager::<Data>::new(MemoryStore::new());
    /// let public = SessionMiddleware::builder(manager)
    ///     .on_store_failure(FailurePolicy::Anonymous)
    ///     .build();
    /// # let _ = public;
    /// ```
    pub fn on_store_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_store_failure = policy;
        self
    }

    /// The middleware.
    pub fn build(self) -> SessionMiddleware<T> {
        SessionMiddleware {
            inner: Arc::new(Inner {
                manager: self.manager,
                errors: self.errors,
                csrf_rejections: self.csrf_rejections,
                form_limit: self.form_limit,
                on_store_failure: self.on_store_failure,
            }),
        }
    }
}

impl<S, B, T> Transform<S, ServiceRequest> for SessionMiddleware<T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    T: SessionData,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SessionService<S, T>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            inner: Arc::clone(&self.inner),
            _data: PhantomData,
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the inner service.
pub struct SessionService<S, T: SessionData> {
    service: Rc<S>,
    inner: Arc<Inner<T>>,
    _data: PhantomData<fn() -> T>,
}

impl<S, T: SessionData> fmt::Debug for SessionService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, B, T> Service<ServiceRequest> for SessionService<S, T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    T: SessionData,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if req.extensions().contains::<Rc<Slot<T>>>() {
                // An outer SessionMiddleware<T> already manages this request.
                return service.call(req).await.map(|res| res.map_into_left_body());
            }
            let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            let buffer = should_buffer_form(
                inner.manager.extractor(),
                header(CONTENT_TYPE),
                header(CONTENT_LENGTH),
                inner.form_limit,
            ) || csrf_needs_form(
                inner.manager.csrf(),
                req.method().as_str(),
                req.path(),
                &ActixView::new(req.request()),
                inner.form_limit,
            );
            if buffer {
                buffer_form(&mut req, inner.form_limit).await;
            }
            let slot = Rc::new(Slot {
                pending: inner
                    .manager
                    .begin()
                    .with_failure_policy(inner.on_store_failure),
                errors: Arc::clone(&inner.errors),
            });
            req.extensions_mut().insert(Rc::clone(&slot));
            let checked = check_csrf(
                &slot.pending,
                &ActixView::new(req.request()),
                req.method().as_str(),
                req.path(),
            )
            .await;
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(rejection)) => {
                    log_csrf_rejection(&rejection, req.method().as_str(), req.path());
                    let response = (inner.csrf_rejections)(&rejection, req.request());
                    let res = req.into_response(response);
                    return finish_refused(&slot, &inner, res).await;
                }
                Err(error) => {
                    let response = handle(&inner.errors, &error, req.request());
                    return Ok(req.into_response(response).map_into_right_body());
                }
            }
            if inner.manager.config().disable_session_forward {
                let incoming = slot.pending.capture(&ActixView::new(req.request()));
                let plan = StripPlan::new(inner.manager.extractor(), incoming);
                strip_session_id(&mut req, &plan);
            }

            let res = service.call(req).await;
            let outcome = match &res {
                Ok(res) if res.response().error().is_some() => {
                    Outcome::HandlerError(res.status().as_u16())
                }
                Ok(res) => Outcome::Response(res.status().as_u16()),
                Err(_) => Outcome::Error,
            };
            let update = end_request(&slot.pending, outcome).await;
            let mut res = match res {
                Ok(res) => res,
                Err(error) => {
                    if slot.pending.loaded().is_some() {
                        tracing::warn!(
                            %error,
                            "an inner service failed without a response; the session was not saved"
                        );
                    }
                    return Err(error);
                }
            };
            match update {
                Ok(update) => {
                    write_response(update, &mut Headers(res.headers_mut()));
                    Ok(res.map_into_left_body())
                }
                Err(error) => {
                    let response = handle(&inner.errors, &error, res.request());
                    Ok(res.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

/// Ends the request of a response the middleware made itself (a CSRF
/// refusal): the session, if the check loaded it, is committed as for any
/// answer, so a stale id still gets its removal cookie.
async fn finish_refused<T: SessionData, B>(
    slot: &Slot<T>,
    inner: &Inner<T>,
    mut res: ServiceResponse,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    match end_request(&slot.pending, Outcome::Response(res.status().as_u16())).await {
        Ok(update) => {
            write_response(update, &mut Headers(res.headers_mut()));
            Ok(res.map_into_right_body())
        }
        Err(error) => {
            let response = handle(&inner.errors, &error, res.request());
            Ok(res.into_response(response).map_into_right_body())
        }
    }
}

/// The response headers as [`write_response`] edits them.
struct Headers<'a>(&'a mut HeaderMap);

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
async fn buffer_form(req: &mut ServiceRequest, limit: usize) {
    if req.extensions().contains::<BufferedForm>() {
        return;
    }
    let mut payload = req.take_payload();
    let mut buf = BytesMut::new();
    while let Some(item) = payload.next().await {
        match item {
            Ok(chunk) if buf.len() + chunk.len() <= limit => buf.extend_from_slice(&chunk),
            item => {
                // Too large, or the body failed: give the handler everything
                // read so far followed by the rest, untouched.
                let head = stream::iter([Ok(buf.freeze()), item]);
                let rest: Payload = Payload::Stream {
                    payload: Box::pin(head.chain(payload)),
                };
                req.set_payload(rest);
                return;
            }
        }
    }
    let body = buf.freeze();
    req.extensions_mut().insert(BufferedForm(body.clone()));
    req.set_payload(bytes_payload(body));
}

fn bytes_payload(body: Bytes) -> Payload {
    let once = stream::once(async move { Ok::<_, PayloadError>(body) });
    Payload::Stream {
        payload: Box::pin(once),
    }
}

/// `disableSessionForward`: removes the session id from the request.
fn strip_session_id(req: &mut ServiceRequest, plan: &StripPlan) {
    if plan.strips_cookies() {
        let values: Vec<HeaderValue> = req.headers().get_all(COOKIE).cloned().collect();
        req.headers_mut().remove(COOKIE);
        for value in values {
            if let Some(kept) = plan.cookie_header(value.as_bytes()) {
                if let Ok(value) = HeaderValue::from_bytes(&kept) {
                    req.headers_mut().append(COOKIE, value);
                }
            }
        }
    }
    let doomed: Vec<HeaderName> = req
        .headers()
        .keys()
        .filter(|name| plan.strips_header(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        req.headers_mut().remove(name);
    }
    let target = req.uri().path_and_query().map(PathAndQuery::as_str);
    if let Some(stripped) = target.and_then(|pq| plan.path_and_query(pq)) {
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(stripped) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.head_mut().uri = uri;
            }
        }
    }
}

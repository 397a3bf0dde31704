//! `SessionMiddleware<T>`: one lazily loaded session per request, committed
//! after the handler, with the id written back as the extractor says.

use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue, COOKIE};
use actix_web::http::uri::{PathAndQuery, Uri};
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use futures_util::stream::{self, StreamExt};
use sessionkit::adapter::{
    Builder, Checked, Ending, Framework, Options, Outcome, ResponseHeaders, Slot, StripPlan,
};
use sessionkit::store::SessionStore;
use sessionkit::{Config, ConfigError, SessionData, SessionManager};

use crate::view::{ActixView, BufferedForm};

/// actix-web as sessionkit's adapter core sees it: the framework parameter
/// of [`SessionMiddlewareBuilder`] (its handlers take an [`HttpRequest`]
/// and return an [`HttpResponse`]). Applications never name it.
#[derive(Debug, Clone, Copy)]
pub enum Actix {}

impl Framework for Actix {
    type Request = HttpRequest;
    type Response = HttpResponse;
    type Middleware<T: SessionData> = SessionMiddleware<T>;

    fn middleware<T: SessionData>(options: Arc<Options<T, Self>>) -> SessionMiddleware<T> {
        SessionMiddleware { options }
    }

    fn plain(status: u16, body: String) -> HttpResponse {
        HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .content_type("text/plain; charset=utf-8")
        .body(body)
    }

    fn method_and_path(req: &HttpRequest) -> (&str, &str) {
        (req.method().as_str(), req.path())
    }

    fn missing_middleware(data_type: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no SessionMiddleware<{data_type}> is installed on this route: wrap the app, \
             scope or resource with sessionkit_actix::SessionMiddleware::<{data_type}>, \
             registered after (outside of) any middleware that uses the session"
        )
    }
}

/// What a request's extensions hold for the session of type `T`.
pub(crate) type RequestSlot<T> = Rc<Slot<T, Actix>>;

/// Session middleware for sessions of type `T`.
///
/// It loads the request's session when the handler, a guard or
/// [`MapSessionToHeader`](crate::MapSessionToHeader) first asks for it
/// (never, on a route that does not), commits it after the handler and
/// writes the id back into the response (`Set-Cookie` or header,
/// `Cache-Control: no-store`); a [`SessionError`](sessionkit::SessionError) is logged and answered by
/// the error handler ([`default_error_handler`](crate::default_error_handler)). With CSRF on, unsafe
/// methods are checked before the handler (see the crate docs, "CSRF").
/// In full (the response's headers, errors and
/// [`on_store_failure`](SessionMiddlewareBuilder::on_store_failure),
/// `disableSessionForward`), this is sessionkit's one adapter flow, the axum
/// layer's too: [What the built middleware does](sessionkit::adapter::Builder#what-the-built-middleware-does).
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
    options: Arc<Options<T, Actix>>,
}

impl<T: SessionData> Clone for SessionMiddleware<T> {
    fn clone(&self) -> Self {
        Self {
            options: Arc::clone(&self.options),
        }
    }
}

impl<T: SessionData> fmt::Debug for SessionMiddleware<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionMiddleware")
            .field(&self.options)
            .finish()
    }
}

impl<T: SessionData> SessionMiddleware<T> {
    /// The middleware for `manager`, with every option at its default.
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

    /// A builder, to set the error handler, the form buffering limit, the
    /// policy on store failures or the CSRF rejection handler.
    pub fn builder(manager: SessionManager<T>) -> SessionMiddlewareBuilder<T> {
        Builder::new(manager)
    }

    /// The manager (configuration, store, extractor).
    #[must_use]
    pub fn manager(&self) -> &SessionManager<T> {
        self.options.manager()
    }
}

/// Builds a [`SessionMiddleware`]: sessionkit's one adapter
/// [`Builder`](sessionkit::adapter::Builder), for actix-web. Its options
/// (the crate docs' table) are the axum layer's too. Handlers take the
/// error (or [`CsrfRejection`](sessionkit::CsrfRejection)) and the
/// [`HttpRequest`], and return an [`HttpResponse`].
///
/// ```
/// use actix_web::HttpResponse;
/// use sessionkit::{Csrf, FailurePolicy, MemoryStore, SessionError, SessionManager};
/// use sessionkit_actix::SessionMiddleware;
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// let manager = SessionManager::<Data>::builder(MemoryStore::new()).csrf(Csrf::default()).build()?;
/// let middleware = SessionMiddleware::builder(manager.clone())
///     .error_handler(|error, _req| match error {
///         SessionError::Store(_) => HttpResponse::ServiceUnavailable()
///             .insert_header(("Retry-After", "5"))
///             .body("try again shortly"),
///         _ => HttpResponse::InternalServerError().finish(),
///     })
///     .csrf_rejection_handler(|rejection, _req| {
///         HttpResponse::Forbidden().body(format!("<p>{rejection}</p>"))
///     })
///     .form_limit(16 * 1024)
///     .build();
/// // Public routes: an anonymous, never-saved session while the store is down.
/// let public = SessionMiddleware::builder(manager)
///     .on_store_failure(FailurePolicy::Anonymous)
///     .build();
/// # let _ = (middleware, public);
/// # Ok::<(), sessionkit::ConfigError>(())
/// ```
pub type SessionMiddlewareBuilder<T> = Builder<T, Actix>;

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
            options: Arc::clone(&self.options),
            _data: PhantomData,
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the inner service.
pub struct SessionService<S, T: SessionData> {
    service: Rc<S>,
    options: Arc<Options<T, Actix>>,
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
        let options = Arc::clone(&self.options);
        Box::pin(async move {
            if req.extensions().contains::<RequestSlot<T>>() {
                // An outer SessionMiddleware<T> already manages this request.
                return service.call(req).await.map(|res| res.map_into_left_body());
            }
            let view = ActixView::new(req.request());
            if options.needs_form(&view, req.method().as_str(), req.path()) {
                buffer_form(&mut req, options.form_limit()).await;
            }
            let slot = Rc::new(options.begin());
            req.extensions_mut().insert(Rc::clone(&slot));
            let view = ActixView::new(req.request());
            let check = slot.check(&view, req.method().as_str(), req.path(), || {
                req.request().clone()
            });
            match check.await {
                Checked::Proceed => {}
                Checked::Refused(response) => {
                    let res = req.into_response(response);
                    let outcome = Outcome::Response(res.status().as_u16());
                    let (Ok(res) | Err(res)) = end(&slot, res, outcome).await;
                    return Ok(res.map_into_right_body());
                }
                Checked::Failed(response) => {
                    return Ok(req.into_response(response).map_into_right_body())
                }
            }
            if let Some(plan) = slot.strip_plan(&ActixView::new(req.request())) {
                strip_session_id(&mut req, &plan);
            }

            let res = match service.call(req).await {
                Ok(res) => res,
                Err(error) => {
                    slot.inner_failed(&error);
                    return Err(error);
                }
            };
            let status = res.status().as_u16();
            let outcome = match res.response().error() {
                Some(_) => Outcome::HandlerError(status),
                None => Outcome::Response(status),
            };
            Ok(match end(&slot, res, outcome).await {
                Ok(res) => res.map_into_left_body(),
                Err(res) => res.map_into_right_body(),
            })
        })
    }
}

/// Ends the request after `res` ([`Slot::end`]): `Ok` the same response
/// with the session's headers, `Err` the error handler's response instead.
async fn end<T: SessionData, B>(
    slot: &Slot<T, Actix>,
    mut res: ServiceResponse<B>,
    outcome: Outcome,
) -> Result<ServiceResponse<B>, ServiceResponse> {
    match slot.end(outcome, res.request()).await {
        Ending::Write(update) => {
            sessionkit::adapter::write_response(update, &mut Headers(res.headers_mut()));
            Ok(res)
        }
        Ending::Replace(response) => Err(res.into_response(response)),
    }
}

/// A request's or response's headers as the core edits them.
pub(crate) struct Headers<'a>(pub(crate) &'a mut HeaderMap);

impl Headers<'_> {
    /// Removes every header whose name `doomed` says so.
    pub(crate) fn remove_where(&mut self, doomed: impl Fn(&str) -> bool) {
        let names: Vec<HeaderName> = self
            .0
            .keys()
            .filter(|n| doomed(n.as_str()))
            .cloned()
            .collect();
        for name in names {
            self.0.remove(name);
        }
    }
}

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
    Headers(req.headers_mut()).remove_where(|name| plan.strips_header(name));
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

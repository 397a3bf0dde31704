//! `SessionLayer<T>`: one lazily loaded session per request, committed after
//! the inner service, with the id written back as the extractor says.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use sessionkit::adapter::{
    write_response, Builder, Checked, Ending, Framework, Options, Outcome, ResponseHeaders, Slot,
    StripPlan,
};
use sessionkit::store::SessionStore;
use sessionkit::{Config, ConfigError, SessionData, SessionManager};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ErrorContext;
use crate::view::{AxumView, BufferedForm};

/// axum as sessionkit's adapter core sees it: the framework parameter of
/// [`SessionLayerBuilder`] (its handlers take an [`ErrorContext`] and
/// return a [`Response`]). Applications never name it.
#[derive(Debug, Clone, Copy)]
pub enum Axum {}

impl Framework for Axum {
    type Request = ErrorContext;
    type Response = Response;
    type Middleware<T: SessionData> = SessionLayer<T>;

    fn middleware<T: SessionData>(options: Arc<Options<T, Self>>) -> SessionLayer<T> {
        SessionLayer { options }
    }

    fn plain(status: u16, body: String) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }

    fn method_and_path(req: &ErrorContext) -> (&str, &str) {
        (req.method().as_str(), req.path())
    }

    fn missing_middleware(data_type: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no SessionLayer<{data_type}> is installed on this route: add \
             .layer(sessionkit_axum::SessionLayer::<{data_type}>::new(manager)) to the \
             router, outside of (added after) any layer that uses the session"
        )
    }
}

/// What a request's extensions hold for the session of type `T`.
pub(crate) type RequestSlot<T> = Arc<Slot<T, Axum>>;

/// Session layer for sessions of type `T`: a tower [`Layer`].
///
/// Every request gets a session that is loaded only when something inside
/// the layer asks for it (a handler's [`Session`](crate::Session)
/// extractor, a `from_fn` middleware,
/// [`MapSessionToHeader`](crate::MapSessionToHeader)), and committed after
/// the inner service, the id going back in the response (`Set-Cookie` or
/// header, `Cache-Control: no-store`). A [`SessionError`](sessionkit::SessionError) is logged and
/// answered by the error handler ([`default_error_handler`](crate::default_error_handler)); with CSRF on,
/// unsafe methods are checked first (crate docs, "CSRF"). The details
/// (headers, errors and [`on_store_failure`](SessionLayerBuilder::on_store_failure),
/// `disableSessionForward`) are shared with the actix middleware and
/// written once: [What the built middleware does](sessionkit::adapter::Builder#what-the-built-middleware-does).
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
    options: Arc<Options<T, Axum>>,
}

impl<T: SessionData> Clone for SessionLayer<T> {
    fn clone(&self) -> Self {
        Self {
            options: Arc::clone(&self.options),
        }
    }
}

impl<T: SessionData> fmt::Debug for SessionLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionLayer").field(&self.options).finish()
    }
}

impl<T: SessionData> SessionLayer<T> {
    /// The layer for `manager`, with every option at its default.
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

    /// A builder, to set the error handler, the form buffering limit, the
    /// policy on store failures or the CSRF rejection handler.
    pub fn builder(manager: SessionManager<T>) -> SessionLayerBuilder<T> {
        Builder::new(manager)
    }

    /// The manager (configuration, store, extractor).
    #[must_use]
    pub fn manager(&self) -> &SessionManager<T> {
        self.options.manager()
    }
}

/// Builds a [`SessionLayer`]: sessionkit's one adapter
/// [`Builder`](sessionkit::adapter::Builder), for axum. Its options (the
/// crate docs' table) are the actix middleware's too. Handlers take the
/// error (or [`CsrfRejection`](sessionkit::CsrfRejection)) and an
/// [`ErrorContext`], and return a [`Response`].
///
/// ```
/// use axum::response::IntoResponse;
/// use axum::{routing::get, Router};
/// use http::StatusCode;
/// use sessionkit::{Csrf, FailurePolicy, MemoryStore, SessionError, SessionManager};
/// use sessionkit_axum::{Session, SessionLayer};
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// let manager = SessionManager::<Data>::builder(MemoryStore::new()).csrf(Csrf::default()).build()?;
/// let layer = SessionLayer::builder(manager.clone())
///     .error_handler(|error, _req| match error {
///         SessionError::Store(_) => {
///             (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "5")], "try again shortly")
///                 .into_response()
///         }
///         _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
///     })
///     .csrf_rejection_handler(|rejection, _req| {
///         (StatusCode::FORBIDDEN, format!("<p>{rejection}</p>")).into_response()
///     })
///     .form_limit(16 * 1024)
///     .build();
/// // Public pages: served with an anonymous session while the store is down.
/// let public = Router::new()
///     .route("/public", get(|session: Session<Data>| async move {
///         if session.degraded() { "hello, stranger" } else { "hello" }
///     }))
///     .layer(SessionLayer::builder(manager).on_store_failure(FailurePolicy::Anonymous).build());
/// // Everything else: the error handler's 503 while the store is down.
/// let private = Router::new()
///     .route("/cart", get(|session: Session<Data>| async move { session.visits().to_string() }))
///     .layer(layer);
/// let app: Router = public.merge(private);
/// # let _ = app;
/// # Ok::<(), sessionkit::ConfigError>(())
/// ```
pub type SessionLayerBuilder<T> = Builder<T, Axum>;

impl<S, T: SessionData> Layer<S> for SessionLayer<T> {
    type Service = SessionService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            options: Arc::clone(&self.options),
        }
    }
}

/// The service [`SessionLayer`] wraps around the inner service.
pub struct SessionService<S, T: SessionData> {
    inner: S,
    options: Arc<Options<T, Axum>>,
}

impl<S: Clone, T: SessionData> Clone for SessionService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            options: Arc::clone(&self.options),
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
    S::Error: fmt::Display + Send,
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
        let options = Arc::clone(&self.options);
        Box::pin(async move {
            let mut req = req.map(Body::new);
            if req.extensions().get::<RequestSlot<T>>().is_some() {
                // An outer SessionLayer<T> already manages this request.
                return inner.call(req).await.map(|res| res.map(Body::new));
            }
            let view = AxumView::of_request(&req);
            if options.needs_form(&view, req.method().as_str(), req.uri().path()) {
                buffer_form(&mut req, options.form_limit()).await;
            }
            let slot = Arc::new(options.begin());
            req.extensions_mut().insert(Arc::clone(&slot));
            let check = {
                let (method, uri) = (req.method(), req.uri());
                let context = move || ErrorContext::new(method.clone(), uri.clone());
                slot.check(
                    &AxumView::of_request(&req),
                    method.as_str(),
                    uri.path(),
                    context,
                )
            };
            match check.await {
                Checked::Proceed => {}
                Checked::Refused(res) => return Ok(end(&slot, res, &ErrorContext::of(&req)).await),
                Checked::Failed(res) => return Ok(res),
            }
            if let Some(plan) = slot.strip_plan(&AxumView::of_request(&req)) {
                strip_session_id(&mut req, &plan);
            }
            let context = ErrorContext::of(&req);

            match inner.call(req).await {
                Ok(res) => Ok(end(&slot, res.map(Body::new), &context).await),
                Err(error) => {
                    slot.inner_failed(&error);
                    Err(error)
                }
            }
        })
    }
}

/// Ends the request after `res` ([`Slot::end`]): the same response with the
/// session's headers, or the error handler's response instead.
async fn end<T: SessionData>(
    slot: &Slot<T, Axum>,
    mut res: Response,
    context: &ErrorContext,
) -> Response {
    match slot
        .end(Outcome::Response(res.status().as_u16()), context)
        .await
    {
        Ending::Write(update) => {
            write_response(update, &mut Headers(res.headers_mut()));
            res
        }
        Ending::Replace(response) => response,
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
    Headers(headers).remove_where(|name| plan.strips_header(name));
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

//! `MapSessionToHeader<T>`: session fields become request headers for the
//! handler and downstream services (the gateway's `MapSessionToHeaderMiddleware`).

use std::fmt;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::Request;
use sessionkit::adapter::MapHeaders;
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping, SessionData};
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::SessionExt;
use crate::layer::Headers;

/// Sets request headers from session fields before the inner service runs:
/// a tower [`Layer`].
///
/// For every request it removes every client-supplied header whose name is
/// mapped (in any spelling: case and punctuation are ignored), loads the
/// session, and sets one header per mapped field that has a value; an
/// invalid value is logged and never sent. The steps and the mapping's
/// rules are sessionkit's [`MapHeaders`], the actix middleware's too.
///
/// The mapping comes from the struct's `#[header("...")]` attributes
/// ([`MapSessionToHeader::from_derive`]) and/or a runtime [`HeaderMapConfig`],
/// checked against the struct when the layer is built.
///
/// **Order**: it needs the session, so it must run inside
/// [`SessionLayer<T>`](crate::SessionLayer). axum runs the *last* added
/// layer first, so add this one before the session layer:
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionkit::{HeaderMapConfig, MemoryStore, SessionData, SessionManager};
/// use sessionkit_axum::{MapSessionToHeader, SessionLayer};
///
/// #[derive(SessionData, Default)]
/// struct User {
///     #[header("X-User-Id")]
///     user_id: Option<u64>,
/// }
/// let yaml = "headers:\n  X-User-Id: user_id\n";
/// let headers: HeaderMapConfig = serde_norway::from_str(yaml)?;
/// let dashboard: Router = Router::new()
///     .fallback(|| async { "forwarded" })
///     .layer(MapSessionToHeader::<User>::with_config(&headers)?) // runs second
///     .layer(SessionLayer::new(SessionManager::<User>::new(MemoryStore::new()))); // runs first
///
/// // A field that does not exist is refused at start-up:
/// let bad = HeaderMapConfig::new([("X-Role", "role")]);
/// assert!(MapSessionToHeader::<User>::with_config(&bad).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MapSessionToHeader<T: SessionData> {
    headers: MapHeaders<T>,
}

impl<T: SessionData> Clone for MapSessionToHeader<T> {
    fn clone(&self) -> Self {
        Self {
            headers: self.headers.clone(),
        }
    }
}

impl<T: SessionData> fmt::Debug for MapSessionToHeader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.headers.fmt(f)
    }
}

impl<T: SessionData> MapSessionToHeader<T> {
    /// The mapping declared by the struct's `#[header("...")]` attributes.
    #[must_use]
    pub fn from_derive() -> Self {
        Self::from(MapHeaders::from_derive())
    }

    /// The struct's `#[header]` mapping plus `config` ([`MapHeaders::with_config`]).
    ///
    /// # Errors
    /// [`HeaderMapError`] when `config` names an unknown field, a field whose
    /// type cannot be a header value, or an invalid or duplicate header name.
    pub fn with_config(config: &HeaderMapConfig) -> Result<Self, HeaderMapError> {
        MapHeaders::with_config(config).map(Self::from)
    }

    /// Exactly `mapping`.
    #[must_use]
    pub fn new(mapping: HeaderMapping<T>) -> Self {
        Self::from(MapHeaders::new(mapping))
    }

    /// The mapping in use.
    #[must_use]
    pub fn mapping(&self) -> &HeaderMapping<T> {
        self.headers.mapping()
    }
}

impl<T: SessionData> From<MapHeaders<T>> for MapSessionToHeader<T> {
    fn from(headers: MapHeaders<T>) -> Self {
        Self { headers }
    }
}

impl<S, T: SessionData> Layer<S> for MapSessionToHeader<T> {
    type Service = MapSessionToHeaderService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        MapSessionToHeaderService {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// The service [`MapSessionToHeader`] wraps around the inner service.
pub struct MapSessionToHeaderService<S, T: SessionData> {
    inner: S,
    headers: MapHeaders<T>,
}

impl<S: Clone, T: SessionData> Clone for MapSessionToHeaderService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<S, T: SessionData> fmt::Debug for MapSessionToHeaderService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeaderService")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody, T> Service<Request<B>> for MapSessionToHeaderService<S, T>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
    T: SessionData,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let headers = self.headers.clone();
        Box::pin(async move {
            Headers(req.headers_mut()).remove_where(|name| headers.is_spoofed(name));
            let session = match req.session::<T>().await {
                Ok(session) => session,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            headers.apply(&session, &mut Headers(req.headers_mut()));
            inner.call(req).await.map(|res| res.map(Body::new))
        })
    }
}

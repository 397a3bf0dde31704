//! `MapSessionToHeader<T>`: session fields become request headers for the
//! handler and downstream services (the gateway's `MapSessionToHeaderMiddleware`).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue, Request};
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping, SessionData};
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::SessionExt;

/// Sets request headers from session fields before the inner service runs:
/// a tower [`Layer`].
///
/// For every request it
/// 1. **removes every client-supplied header whose name is mapped**, compared
///    case-insensitively and with `_` read as `-` (`X-User-Id`, `x-user-id`,
///    `x_user_id`, …), whether or not the session has a value, so a client
///    can never spoof one to a downstream service;
/// 2. loads the session (this layer always touches it);
/// 3. inserts one header per mapped field that has a value (`None` → the
///    header stays absent). A value that is not a valid header value (CR/LF,
///    control bytes, non-ASCII) is skipped and logged, never sent.
///
/// The mapping comes from the struct's `#[header("...")]` attributes
/// ([`MapSessionToHeader::from_derive`]) and/or a runtime [`HeaderMapConfig`]
/// (`headers: {Authorization: authorization, X-User-Id: user_id}`), checked
/// against the struct when the layer is built: an unknown field is an error
/// at start-up, not a silent no-op.
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
    mapping: Arc<HeaderMapping<T>>,
}

impl<T: SessionData> Clone for MapSessionToHeader<T> {
    fn clone(&self) -> Self {
        Self {
            mapping: Arc::clone(&self.mapping),
        }
    }
}

impl<T: SessionData> fmt::Debug for MapSessionToHeader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeader")
            .field("headers", &self.mapping)
            .finish()
    }
}

impl<T: SessionData> MapSessionToHeader<T> {
    /// The mapping declared by the struct's `#[header("...")]` attributes.
    #[must_use]
    pub fn from_derive() -> Self {
        Self::new(HeaderMapping::from_derive())
    }

    /// The struct's `#[header]` mapping plus `config` (a runtime entry for a
    /// header the struct already maps replaces it).
    ///
    /// # Errors
    /// [`HeaderMapError`] when `config` names an unknown field, a field whose
    /// type cannot be a header value, or an invalid or duplicate header name.
    pub fn with_config(config: &HeaderMapConfig) -> Result<Self, HeaderMapError> {
        Ok(Self::new(HeaderMapping::from_derive().with_config(config)?))
    }

    /// Exactly `mapping`.
    #[must_use]
    pub fn new(mapping: HeaderMapping<T>) -> Self {
        if mapping.is_empty() {
            tracing::warn!(
                data_type = std::any::type_name::<T>(),
                "MapSessionToHeader has no header to map: add #[header] attributes or a headers map"
            );
        }
        Self {
            mapping: Arc::new(mapping),
        }
    }

    /// The mapping in use.
    #[must_use]
    pub fn mapping(&self) -> &HeaderMapping<T> {
        &self.mapping
    }
}

impl<S, T: SessionData> Layer<S> for MapSessionToHeader<T> {
    type Service = MapSessionToHeaderService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        MapSessionToHeaderService {
            inner,
            mapping: Arc::clone(&self.mapping),
        }
    }
}

/// The service [`MapSessionToHeader`] wraps around the inner service.
pub struct MapSessionToHeaderService<S, T: SessionData> {
    inner: S,
    mapping: Arc<HeaderMapping<T>>,
}

impl<S: Clone, T: SessionData> Clone for MapSessionToHeaderService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            mapping: Arc::clone(&self.mapping),
        }
    }
}

impl<S, T: SessionData> fmt::Debug for MapSessionToHeaderService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeaderService")
            .field("headers", &self.mapping)
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
        let mapping = Arc::clone(&self.mapping);
        Box::pin(async move {
            // 1. No client-supplied value for a mapped header survives.
            let spoofed: Vec<HeaderName> = req
                .headers()
                .keys()
                .filter(|name| mapping.is_mapped(name.as_str()))
                .cloned()
                .collect();
            for name in spoofed {
                req.headers_mut().remove(name);
            }

            // 2. The session.
            let session = match req.session::<T>().await {
                Ok(session) => session,
                Err(rejection) => return Ok(rejection.into_response()),
            };

            // 3. The session's values, replacing (never appending).
            let mut mapped = Vec::new();
            session.read(|data| {
                mapping.render(data, |name, value| {
                    match (HeaderName::try_from(name), HeaderValue::from_str(value)) {
                        (Ok(name), Ok(value)) => mapped.push((name, value)),
                        _ => tracing::warn!(header = name, "mapped header not set: invalid"),
                    }
                });
            });
            for (name, value) in mapped {
                req.headers_mut().insert(name, value);
            }

            inner.call(req).await.map(|res| res.map(Body::new))
        })
    }
}

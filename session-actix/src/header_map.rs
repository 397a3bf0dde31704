//! `MapSessionToHeader<T>`: session fields become request headers for the
//! handler and downstream services (the gateway's `MapSessionToHeaderMiddleware`).

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, ResponseError};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping, SessionData};

use crate::extract::SessionExt;

/// Sets request headers from session fields before the inner service runs.
///
/// For every request it
/// 1. **removes every client-supplied header whose name is mapped**, compared
///    by letters and digits only, ignoring case and punctuation (`X-User-Id`,
///    `x_user_id`, `X.User.Id`, `XUserId`, `x~user~id`, …; see
///    [`sessionkit::adapter::normalize_header_name`]), whether or not the session has a
///    value, so a client can never spoof one to a downstream service, however
///    that service folds header names;
/// 2. loads the session (this middleware always touches it);
/// 3. inserts one header per mapped field that has a value (`None` → the
///    header stays absent). A value that is not a valid header value (CR/LF,
///    control bytes, non-ASCII) is skipped and logged, never sent.
///
/// The mapping comes from the struct's `#[header("...")]` attributes
/// ([`MapSessionToHeader::from_derive`]) and/or a runtime [`HeaderMapConfig`]
/// (`headers: {Authorization: authorization, X-User-Id: user_id}`), which is
/// checked against the struct when the middleware is built: an unknown field
/// is an error at start-up, not a silent no-op.
///
/// **Order**: it needs the session, so it must run inside
/// [`SessionMiddleware<T>`](crate::SessionMiddleware). actix runs the *last*
/// registered `.wrap` first, so register this one before the session
/// middleware:
///
/// ```
/// use actix_web::{web, App};
/// use sessionkit::{HeaderMapConfig, MemoryStore, SessionManager};
/// use sessionkit_actix::{MapSessionToHeader, SessionMiddleware};
/// use sessionkit::SessionData;
///
/// #[derive(SessionData, Default)]
/// struct User {
///     #[header("X-User-Id")]
///     user_id: Option<u64>,
/// }
/// let yaml = "headers:\n  X-User-Id: user_id\n";
/// let headers: HeaderMapConfig = serde_norway::from_str(yaml)?;
/// let app = App::new().service(
///     web::scope("/dashboard")
///         .wrap(MapSessionToHeader::<User>::with_config(&headers)?) // runs second
///         .wrap(SessionMiddleware::new(SessionManager::<User>::new(MemoryStore::new()))) // runs first
///         .default_service(web::to(|| async { "forwarded" })),
/// );
/// # let _ = app;
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

impl<S, B, T> Transform<S, ServiceRequest> for MapSessionToHeader<T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    T: SessionData,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = MapSessionToHeaderService<S, T>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MapSessionToHeaderService {
            service: Rc::new(service),
            mapping: Arc::clone(&self.mapping),
        }))
    }
}

/// The service [`MapSessionToHeader`] wraps around the inner service.
pub struct MapSessionToHeaderService<S, T: SessionData> {
    service: Rc<S>,
    mapping: Arc<HeaderMapping<T>>,
}

impl<S, T: SessionData> fmt::Debug for MapSessionToHeaderService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeaderService")
            .field("headers", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl<S, B, T> Service<ServiceRequest> for MapSessionToHeaderService<S, T>
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
                Err(rejection) => {
                    let res = rejection.error_response();
                    return Ok(req.into_response(res).map_into_right_body());
                }
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

            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}

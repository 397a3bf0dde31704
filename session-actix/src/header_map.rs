//! `MapSessionToHeader<T>`: session fields become request headers for the
//! handler and downstream services (the gateway's `MapSessionToHeaderMiddleware`).

use std::fmt;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, ResponseError};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use sessionkit::adapter::MapHeaders;
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping, SessionData};

use crate::extract::SessionExt;
use crate::middleware::Headers;

/// Sets request headers from session fields before the inner service runs.
///
/// For every request it removes every client-supplied header whose name is
/// mapped (in any spelling: case and punctuation are ignored), loads the
/// session, and sets one header per mapped field that has a value; an
/// invalid value is logged and never sent. The steps and the mapping's
/// rules are sessionkit's [`MapHeaders`], the axum layer's too.
///
/// The mapping comes from the struct's `#[header("...")]` attributes
/// ([`MapSessionToHeader::from_derive`]) and/or a runtime [`HeaderMapConfig`],
/// checked against the struct when the middleware is built.
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
            headers: self.headers.clone(),
        }))
    }
}

/// The service [`MapSessionToHeader`] wraps around the inner service.
pub struct MapSessionToHeaderService<S, T: SessionData> {
    service: Rc<S>,
    headers: MapHeaders<T>,
}

impl<S, T: SessionData> fmt::Debug for MapSessionToHeaderService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeaderService")
            .field("headers", &self.headers)
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
        let headers = self.headers.clone();
        Box::pin(async move {
            Headers(req.headers_mut()).remove_where(|name| headers.is_spoofed(name));
            let session = match req.session::<T>().await {
                Ok(session) => session,
                Err(rejection) => {
                    let res = rejection.error_response();
                    return Ok(req.into_response(res).map_into_right_body());
                }
            };
            headers.apply(&session, &mut Headers(req.headers_mut()));
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}

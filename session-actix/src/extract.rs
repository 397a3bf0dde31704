//! `Session<T>` as a handler argument, and `req.session::<T>()` for guards
//! and other middleware.

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use sessionkit::adapter::Slot;
use sessionkit::SessionData;

use crate::error::SessionRejection;
use crate::middleware::{Actix, RequestSlot};
use crate::view::ActixView;

/// The session of type `T` for this request: a handler argument.
///
/// Derefs to [`sessionkit::Session<T>`], so everything there works on it: the
/// accessors `#[derive(SessionData)]` generates (`session.visits()`,
/// `session.set_visits(1)`, …), and `regenerate`, `reset`, `destroy`,
/// `fresh`, `id`, `keys`, `set_idle_timeout`. Changes are saved by
/// [`SessionMiddleware`](crate::SessionMiddleware) when the handler returns.
///
/// Extracting it loads the session (once per request; later extractions
/// share it). Without the middleware on the route it is a
/// [`SessionRejection`] (500, with a message saying what to install); when
/// the store fails, the middleware's error handler answers.
///
/// ```
/// use actix_web::{test, web, App, HttpResponse};
/// use sessionkit::{MemoryStore, SessionData, SessionManager};
/// use sessionkit_actix::{Session, SessionMiddleware};
///
/// #[derive(SessionData, Default)]
/// struct Counter {
///     visits: u32,
/// }
///
/// async fn index(session: Session<Counter>) -> HttpResponse {
///     let visits = session.update_visits(|v| { *v += 1; *v });
///     HttpResponse::Ok().body(format!("Visits: {visits}"))
/// }
/// # actix_web::rt::System::new().block_on(async {
/// let manager = SessionManager::<Counter>::new(MemoryStore::new());
/// let app = test::init_service(
///     App::new().wrap(SessionMiddleware::new(manager)).route("/", web::get().to(index)),
/// ).await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
/// assert!(res.headers().contains_key("set-cookie"));
/// assert_eq!(test::read_body(res).await, "Visits: 1");
/// # });
/// ```
pub struct Session<T: SessionData>(sessionkit::Session<T>);

impl<T: SessionData> Session<T> {
    /// The runtime handle (to move into a spawned task, for instance).
    #[must_use]
    pub fn into_inner(self) -> sessionkit::Session<T> {
        self.0
    }
}

impl<T: SessionData> Deref for Session<T> {
    type Target = sessionkit::Session<T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T: SessionData> Clone for Session<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: SessionData> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: SessionData> From<Session<T>> for sessionkit::Session<T> {
    fn from(session: Session<T>) -> Self {
        session.0
    }
}

impl<T: SessionData> FromRequest for Session<T> {
    type Error = SessionRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let slot = slot::<T>(req);
        // Held while loading; needed to render an error response.
        let req = req.clone();
        Box::pin(async move { load(&*slot?, &req).await })
    }
}

/// Access to the request's session from guards, `from_fn` middleware and
/// other services (anywhere a handler argument is not available).
///
/// Implemented for [`HttpRequest`] and [`ServiceRequest`]. The first call
/// loads the session; later calls (and the handler's [`Session`]) share it.
/// Middleware using it must run inside [`SessionMiddleware`](crate::SessionMiddleware):
/// register it with `.wrap(..)` *before* the session middleware (actix runs
/// the last registered `.wrap` first).
///
/// The id is read from the request on the first call. With a `param:`
/// lookup, make that first call where actix has matched the route (in a
/// handler, or in middleware on the resource or scope that declares the
/// parameter), not in app-level middleware.
///
/// A `RequireAuth` guard in the style of the references' "Authentication
/// Middleware":
///
/// ```
/// use actix_web::body::MessageBody;
/// use actix_web::dev::{ServiceRequest, ServiceResponse};
/// use actix_web::middleware::{from_fn, Next};
/// use actix_web::{web, App, Error, HttpResponse, ResponseError};
/// use sessionkit::{MemoryStore, SessionData, SessionManager};
/// use sessionkit_actix::{SessionExt, SessionMiddleware};
///
/// #[derive(SessionData, Default)]
/// struct Auth {
///     authenticated: bool,
/// }
///
/// async fn require_auth(
///     req: ServiceRequest,
///     next: Next<impl MessageBody + 'static>,
/// ) -> Result<ServiceResponse<impl MessageBody>, Error> {
///     let allowed = match req.session::<Auth>().await {
///         Ok(session) => session.authenticated(),
///         Err(rejection) => {
///             let res = rejection.error_response();
///             return Ok(req.into_response(res).map_into_right_body());
///         }
///     };
///     if !allowed {
///         let res = HttpResponse::Unauthorized().body("log in first");
///         return Ok(req.into_response(res).map_into_right_body());
///     }
///     Ok(next.call(req).await?.map_into_left_body())
/// }
///
/// let manager = SessionManager::<Auth>::new(MemoryStore::new());
/// let app = App::new().service(
///     web::scope("/admin")
///         .wrap(from_fn(require_auth))           // runs second
///         .wrap(SessionMiddleware::new(manager)) // runs first
///         .route("", web::get().to(|| async { "secret" })),
/// );
/// # let _ = app;
/// ```
pub trait SessionExt {
    /// The session of type `T`, loaded on first use.
    ///
    /// # Errors
    /// [`SessionRejection`]: no `SessionMiddleware<T>` outside this code, or
    /// the store failed (the rejection's response is then the error handler's).
    fn session<T: SessionData>(
        &self,
    ) -> impl Future<Output = Result<Session<T>, SessionRejection>> + '_;
}

impl SessionExt for HttpRequest {
    async fn session<T: SessionData>(&self) -> Result<Session<T>, SessionRejection> {
        load(&*slot::<T>(self)?, self).await
    }
}

impl SessionExt for ServiceRequest {
    fn session<T: SessionData>(
        &self,
    ) -> impl Future<Output = Result<Session<T>, SessionRejection>> + '_ {
        self.request().session::<T>()
    }
}

/// Finds the middleware's slot.
fn slot<T: SessionData>(req: &HttpRequest) -> Result<RequestSlot<T>, SessionRejection> {
    req.extensions()
        .get::<RequestSlot<T>>()
        .cloned()
        .ok_or_else(SessionRejection::missing::<T>)
}

async fn load<T: SessionData>(
    slot: &Slot<T, Actix>,
    req: &HttpRequest,
) -> Result<Session<T>, SessionRejection> {
    let loading = slot.load(&ActixView::new(req), || req.clone());
    loading.await.map(Session).map_err(SessionRejection::failed)
}

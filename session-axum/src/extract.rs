//! `Session<T>` as an extractor, and `req.session::<T>()` for middleware.

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::Request;
use sessionkit::SessionData;

use crate::error::{ErrorContext, SessionRejection};
use crate::layer::RequestSlot;
use crate::view::AxumView;

/// The session of type `T` for this request: an axum extractor.
///
/// Derefs to [`sessionkit::Session<T>`], so everything there works on it: the
/// accessors `#[derive(SessionData)]` generates (`session.visits()`,
/// `session.set_visits(1)`, …), and `regenerate`, `reset`, `destroy`,
/// `fresh`, `id`, `keys`, `set_idle_timeout`. Changes are saved by
/// [`SessionLayer`](crate::SessionLayer) when the handler returns.
///
/// Extracting it loads the session (once per request; later extractions
/// share it). Without the layer on the route it is a [`SessionRejection`]
/// (500, with a message saying what to add); when the store fails, the
/// layer's error handler answers.
///
/// ```
/// use axum::{body::Body, http::Request, routing::get, Router};
/// use sessionkit::{MemoryStore, SessionData, SessionManager};
/// use sessionkit_axum::{Session, SessionLayer};
/// use tower::ServiceExt;
///
/// #[derive(SessionData, Default)]
/// struct Counter {
///     visits: u32,
/// }
///
/// async fn index(session: Session<Counter>) -> String {
///     let visits = session.update_visits(|v| { *v += 1; *v });
///     format!("Visits: {visits}")
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::<Counter>::new(MemoryStore::new());
/// let app = Router::new().route("/", get(index)).layer(SessionLayer::new(manager));
/// let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// assert!(res.headers().contains_key("set-cookie"));
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

impl<S: Send + Sync, T: SessionData> FromRequestParts<S> for Session<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        load(AxumView::of_parts(parts)).await
    }
}

/// Access to the request's session from `from_fn` middleware and other
/// services (anywhere an extractor is not available).
///
/// Implemented for [`Request<B>`] and [`Parts`]. The first call loads the
/// session; later calls (and the handler's [`Session`]) share it. The
/// middleware must run inside [`SessionLayer`](crate::SessionLayer): add it
/// with `.layer(..)` *before* the session layer (axum runs the last added
/// layer first).
///
/// A `require_auth` guard in the style of the references' "Authentication
/// Middleware":
///
/// ```
/// use axum::extract::Request;
/// use axum::middleware::{from_fn, Next};
/// use axum::response::{IntoResponse, Response};
/// use axum::{http::StatusCode, routing::get, Router};
/// use sessionkit::{MemoryStore, SessionData, SessionManager};
/// use sessionkit_axum::{SessionExt, SessionLayer};
///
/// #[derive(SessionData, Default)]
/// struct Auth {
///     authenticated: bool,
/// }
///
/// async fn require_auth(req: Request, next: Next) -> Response {
///     match req.session::<Auth>().await {
///         Ok(session) if session.authenticated() => next.run(req).await,
///         Ok(_) => (StatusCode::UNAUTHORIZED, "log in first").into_response(),
///         Err(rejection) => rejection.into_response(),
///     }
/// }
///
/// let manager = SessionManager::<Auth>::new(MemoryStore::new());
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "secret" }))
///     .layer(from_fn(require_auth))         // runs second
///     .layer(SessionLayer::new(manager));   // runs first
/// ```
pub trait SessionExt {
    /// The session of type `T`, loaded on first use.
    ///
    /// # Errors
    /// [`SessionRejection`]: no `SessionLayer<T>` outside this code, or the
    /// store failed (the rejection's response is then the error handler's).
    fn session<T: SessionData>(
        &self,
    ) -> impl Future<Output = Result<Session<T>, SessionRejection>> + Send + '_;
}

impl<B> SessionExt for Request<B> {
    fn session<T: SessionData>(
        &self,
    ) -> impl Future<Output = Result<Session<T>, SessionRejection>> + Send + '_ {
        // The view borrows the head only, so the future is `Send` whatever
        // the body is.
        load(AxumView::of_request(self))
    }
}

impl SessionExt for Parts {
    fn session<T: SessionData>(
        &self,
    ) -> impl Future<Output = Result<Session<T>, SessionRejection>> + Send + '_ {
        load(AxumView::of_parts(self))
    }
}

/// Finds the layer's slot and loads the session (reading the id from `view`
/// on the first call).
async fn load<T: SessionData>(view: AxumView<'_>) -> Result<Session<T>, SessionRejection> {
    let slot = view
        .extensions
        .get::<RequestSlot<T>>()
        .ok_or_else(SessionRejection::missing::<T>)?;
    let context = || ErrorContext::new(view.method.clone(), view.uri.clone());
    let loading = slot.load(&view, context);
    loading.await.map(Session).map_err(SessionRejection::failed)
}

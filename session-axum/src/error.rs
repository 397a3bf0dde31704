//! What clients get when a session cannot be loaded or saved, and the typed
//! rejection of the [`Session`](crate::Session) extractor.

use std::error::Error as StdError;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::{Method, Request, Uri};
use sessionkit::adapter::{self, Rejection};
use sessionkit::{CsrfRejection, SessionError};

use crate::layer::Axum;

/// The signature of an error handler: turns a [`SessionError`] into the
/// response the client gets. See [`SessionLayerBuilder::error_handler`](crate::SessionLayerBuilder::error_handler).
pub type ErrorHandlerFn = dyn Fn(&SessionError, &ErrorContext) -> Response + Send + Sync;

/// The request a session error happened in, for the error handler.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    method: Method,
    uri: Uri,
}

impl ErrorContext {
    /// The context of a request with this method and URI.
    #[must_use]
    pub fn new(method: Method, uri: Uri) -> Self {
        Self { method, uri }
    }

    /// The context of `req`.
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        Self::new(req.method().clone(), req.uri().clone())
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI, as the session layer saw it.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request path.
    #[must_use]
    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

/// The default error handler: an opaque answer that says nothing about the cause.
///
/// | error | status | body |
/// |---|---|---|
/// | [`SessionError::Store`] (backend down, timeout, corrupt record) | `503 Service Unavailable` | `session storage unavailable` |
/// | [`SessionError::Conflict`] (concurrent requests kept changing the same fields; nothing saved) | `409 Conflict` | `session changed concurrently; retry` |
/// | any other (id generation, encoding, `maxSessionBytes`) | `500 Internal Server Error` | `session error` |
///
/// All carry `Cache-Control: no-store`. The cause is logged by the layer
/// with `tracing::error!` before any handler runs, default or not. The
/// table is sessionkit's
/// [`default_error_response`](sessionkit::adapter::default_error_response),
/// the actix middleware's too.
///
/// ```
/// use http::{Method, StatusCode, Uri};
/// use sessionkit::SessionError;
/// use sessionkit::store::StoreError;
/// use sessionkit_axum::ErrorContext;
/// let ctx = ErrorContext::new(Method::GET, Uri::from_static("/cart"));
/// let err = SessionError::Store(StoreError::Timeout(std::time::Duration::from_secs(1)));
/// let res = sessionkit_axum::default_error_handler(&err, &ctx);
/// assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[must_use]
pub fn default_error_handler(error: &SessionError, req: &ErrorContext) -> Response {
    adapter::default_error_handler::<Axum>(error, req)
}

/// The signature of a CSRF rejection handler: turns a [`CsrfRejection`]
/// into the response the client gets. See
/// [`SessionLayerBuilder::csrf_rejection_handler`](crate::SessionLayerBuilder::csrf_rejection_handler).
pub type CsrfHandlerFn = dyn Fn(&CsrfRejection, &ErrorContext) -> Response + Send + Sync;

/// The default answer to a request refused by the CSRF check: `403
/// Forbidden`, `Cache-Control: no-store`, and the rejection's message as
/// `text/plain` (it says what to change: add the token, reload the page,
/// submit from this site).
///
/// ```
/// use http::{Method, StatusCode, Uri};
/// use sessionkit::CsrfRejection;
/// use sessionkit_axum::ErrorContext;
/// let ctx = ErrorContext::new(Method::POST, Uri::from_static("/cart"));
/// let res = sessionkit_axum::default_csrf_handler(&CsrfRejection::BadToken, &ctx);
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// ```
#[must_use]
pub fn default_csrf_handler(rejection: &CsrfRejection, req: &ErrorContext) -> Response {
    adapter::default_csrf_handler::<Axum>(rejection, req)
}

/// Why a [`Session`](crate::Session) could not be had for this request.
///
/// As a response it is the configured error handler's answer (for a failed
/// load) or a `500` whose body says how to fix the setup (no layer). Take
/// `Result<Session<T>, SessionRejection>` in a handler to deal with it
/// yourself.
///
/// ```
/// use axum::response::IntoResponse;
/// use sessionkit_axum::{Session, SessionRejection};
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// async fn handler(session: Result<Session<Data>, SessionRejection>) -> axum::response::Response {
///     match session {
///         Ok(_) => "ok".into_response(),
///         Err(rejection) => {
///             // No SessionLayer<Data> on this route: a setup bug.
///             assert!(rejection.is_missing_layer());
///             rejection.into_response()
///         }
///     }
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
pub struct SessionRejection {
    rejection: Rejection<Axum>,
    response: Option<Response>,
}

impl SessionRejection {
    pub(crate) fn missing<T>() -> Self {
        Self {
            rejection: Rejection::missing::<T>(),
            response: None,
        }
    }

    /// A failed load and the error handler's answer to it.
    pub(crate) fn failed((rejection, response): (Rejection<Axum>, Response)) -> Self {
        Self {
            rejection,
            response: Some(response),
        }
    }

    /// Whether no `SessionLayer<T>` runs outside this code (a setup bug).
    #[must_use]
    pub fn is_missing_layer(&self) -> bool {
        self.rejection.is_missing()
    }

    /// The session error, when the session could not be loaded.
    #[must_use]
    pub fn session_error(&self) -> Option<&SessionError> {
        self.rejection.session_error()
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rejection.fmt(f)
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.rejection, f)
    }
}

impl StdError for SessionRejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.rejection.source()
    }
}

/// The error handler's answer (the cause was logged when it happened), else
/// the core's default ([`Rejection::response`]).
impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.response.unwrap_or_else(|| self.rejection.response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_reported_once() {
        let error = SessionError::Store(sessionkit::store::StoreError::unavailable("refused"));
        let rejection = SessionRejection::failed((Rejection::failed(error), Response::default()));
        let source = rejection
            .source()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(!rejection.to_string().contains(&source), "{rejection}");
    }
}

//! What clients get when a session cannot be loaded or saved, and the typed
//! rejection of the [`Session`](crate::Session) extractor.

use std::any::type_name;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode, Uri};
use sessionkit::adapter::{default_csrf_response, default_error_response, log_session_error};
use sessionkit::{CsrfRejection, SessionError};

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
/// | any other (id generation, encoding, `maxSessionBytes`) | `500 Internal Server Error` | `session error` |
///
/// Both carry `Cache-Control: no-store`. The cause is logged by the layer
/// with `tracing::error!` before any handler runs, default or not.
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
pub fn default_error_handler(error: &SessionError, _req: &ErrorContext) -> Response {
    let (status, body) = default_error_response(error);
    plain(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_owned(),
    )
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
pub fn default_csrf_handler(rejection: &CsrfRejection, _req: &ErrorContext) -> Response {
    let (status, body) = default_csrf_response(rejection);
    plain(
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        body,
    )
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let headers = res.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Logs `error` with its whole cause chain, then asks `handler` for the response.
pub(crate) fn handle(
    handler: &Arc<ErrorHandlerFn>,
    error: &SessionError,
    ctx: &ErrorContext,
) -> Response {
    log_session_error(error, ctx.method.as_str(), ctx.uri.path());
    handler(error, ctx)
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
    kind: Kind,
    response: Option<Response>,
}

enum Kind {
    MissingLayer { data_type: &'static str },
    Failed(Box<SessionError>),
}

impl SessionRejection {
    pub(crate) fn missing<T>() -> Self {
        Self {
            kind: Kind::MissingLayer {
                data_type: type_name::<T>(),
            },
            response: None,
        }
    }

    pub(crate) fn failed(error: SessionError, response: Response) -> Self {
        Self {
            kind: Kind::Failed(Box::new(error)),
            response: Some(response),
        }
    }

    /// Whether no `SessionLayer<T>` runs outside this code (a setup bug).
    #[must_use]
    pub fn is_missing_layer(&self) -> bool {
        matches!(self.kind, Kind::MissingLayer { .. })
    }

    /// The session error, when the session could not be loaded.
    #[must_use]
    pub fn session_error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::Failed(error) => Some(error),
            Kind::MissingLayer { .. } => None,
        }
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer { data_type } => write!(
                f,
                "no SessionLayer<{data_type}> is installed on this route: add \
                 .layer(sessionkit_axum::SessionLayer::<{data_type}>::new(manager)) to the \
                 router, outside of (added after) any layer that uses the session"
            ),
            // The cause is `source()`, not repeated here.
            Kind::Failed(_) => f.write_str("the session could not be loaded"),
        }
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer { data_type } => f
                .debug_struct("SessionRejection::MissingLayer")
                .field("data_type", data_type)
                .finish(),
            Kind::Failed(error) => f
                .debug_tuple("SessionRejection::Failed")
                .field(error)
                .finish(),
        }
    }
}

impl StdError for SessionRejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Failed(error) => Some(error),
            Kind::MissingLayer { .. } => None,
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if let Some(response) = self.response {
            return response;
        }
        match &self.kind {
            // A setup bug: say how to fix it.
            Kind::MissingLayer { .. } => plain(StatusCode::INTERNAL_SERVER_ERROR, self.to_string()),
            // Opaque to clients; the cause was logged when it happened.
            Kind::Failed(error) => {
                let (status, body) = default_error_response(error);
                plain(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body.to_owned(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_reported_once() {
        let error = SessionError::Store(sessionkit::store::StoreError::unavailable("refused"));
        let rejection = SessionRejection::failed(error, Response::default());
        let source = rejection
            .source()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(!rejection.to_string().contains(&source), "{rejection}");
    }
}

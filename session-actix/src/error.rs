//! What clients get when a session cannot be loaded or saved, and the typed
//! rejection of the [`Session`](crate::Session) extractor.

use std::any::type_name;
use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use sessionkit::adapter::{default_csrf_response, default_error_response, log_session_error};
use sessionkit::{CsrfRejection, SessionError};

/// The signature of an error handler: turns a [`SessionError`] into the
/// response the client gets. See [`SessionMiddlewareBuilder::error_handler`](crate::SessionMiddlewareBuilder::error_handler).
pub type ErrorHandlerFn = dyn Fn(&SessionError, &HttpRequest) -> HttpResponse + Send + Sync;

/// The default error handler: an opaque answer that says nothing about the cause.
///
/// | error | status | body |
/// |---|---|---|
/// | [`SessionError::Store`] (backend down, timeout, corrupt record) | `503 Service Unavailable` | `session storage unavailable` |
/// | any other (id generation, encoding, `maxSessionBytes`) | `500 Internal Server Error` | `session error` |
///
/// A store outage is the service being (temporarily) unable to serve, which is
/// what 503 means to clients, load balancers and retry logic; every other
/// error is a bug or a limit in this server, hence 500. Both carry
/// `Cache-Control: no-store`. The cause is logged by the middleware with
/// `tracing::error!` before any handler runs, default or not.
///
/// ```
/// use actix_web::{http::StatusCode, test::TestRequest};
/// use sessionkit::SessionError;
/// use sessionkit::store::StoreError;
/// let req = TestRequest::default().to_http_request();
/// let err = SessionError::Store(StoreError::Timeout(std::time::Duration::from_secs(1)));
/// let res = sessionkit_actix::default_error_handler(&err, &req);
/// assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[must_use]
pub fn default_error_handler(error: &SessionError, _req: &HttpRequest) -> HttpResponse {
    let (status, body) = default_error_response(error);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// The signature of a CSRF rejection handler: turns a [`CsrfRejection`]
/// into the response the client gets. See
/// [`SessionMiddlewareBuilder::csrf_rejection_handler`](crate::SessionMiddlewareBuilder::csrf_rejection_handler).
pub type CsrfHandlerFn = dyn Fn(&CsrfRejection, &HttpRequest) -> HttpResponse + Send + Sync;

/// The default answer to a request refused by the CSRF check: `403
/// Forbidden`, `Cache-Control: no-store`, and the rejection's message as
/// `text/plain` (it says what to change: add the token, reload the page,
/// submit from this site).
///
/// ```
/// use actix_web::{http::StatusCode, test::TestRequest};
/// use sessionkit::CsrfRejection;
/// let req = TestRequest::post().to_http_request();
/// let res = sessionkit_actix::default_csrf_handler(&CsrfRejection::MissingToken, &req);
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// ```
#[must_use]
pub fn default_csrf_handler(rejection: &CsrfRejection, _req: &HttpRequest) -> HttpResponse {
    let (status, body) = default_csrf_response(rejection);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// Logs `error` with its whole cause chain, then asks `handler` for the response.
pub(crate) fn handle(
    handler: &Arc<ErrorHandlerFn>,
    error: &SessionError,
    req: &HttpRequest,
) -> HttpResponse {
    log_session_error(error, req.method().as_str(), req.path());
    handler(error, req)
}

/// Why a [`Session`](crate::Session) could not be had for this request.
///
/// As an actix error its response is the configured error handler's answer
/// (for a failed load) or a `500` whose body says how to fix the setup (no
/// middleware). Take `Result<Session<T>, SessionRejection>` in a handler to
/// deal with it yourself.
///
/// ```
/// use actix_web::{test, web, App, HttpResponse, ResponseError};
/// use sessionkit_actix::{Session, SessionRejection};
/// # #[derive(sessionkit::SessionData, Default)]
/// # struct Data { visits: u32 }
/// async fn handler(session: Result<Session<Data>, SessionRejection>) -> HttpResponse {
///     match session {
///         Ok(_) => HttpResponse::Ok().finish(),
///         Err(rejection) => {
///             assert!(rejection.is_missing_middleware());
///             rejection.error_response()
///         }
///     }
/// }
/// # actix_web::rt::System::new().block_on(async {
/// // No SessionMiddleware on this app:
/// let app = test::init_service(App::new().route("/", web::get().to(handler))).await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
/// assert_eq!(res.status(), 500);
/// # });
/// ```
pub struct SessionRejection {
    kind: Kind,
    response: RefCell<Option<Box<HttpResponse>>>,
}

enum Kind {
    MissingMiddleware { data_type: &'static str },
    Failed(Box<SessionError>),
}

impl SessionRejection {
    pub(crate) fn missing<T>() -> Self {
        Self {
            kind: Kind::MissingMiddleware {
                data_type: type_name::<T>(),
            },
            response: RefCell::new(None),
        }
    }

    pub(crate) fn failed(error: SessionError, response: HttpResponse) -> Self {
        Self {
            kind: Kind::Failed(Box::new(error)),
            response: RefCell::new(Some(Box::new(response))),
        }
    }

    /// Whether no `SessionMiddleware<T>` was installed on the route (a setup bug).
    #[must_use]
    pub fn is_missing_middleware(&self) -> bool {
        matches!(self.kind, Kind::MissingMiddleware { .. })
    }

    /// The session error, when the session could not be loaded.
    #[must_use]
    pub fn session_error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::Failed(error) => Some(error),
            Kind::MissingMiddleware { .. } => None,
        }
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingMiddleware { data_type } => write!(
                f,
                "no SessionMiddleware<{data_type}> is installed on this route: wrap the app, \
                 scope or resource with sessionkit_actix::SessionMiddleware::<{data_type}>, \
                 registered after (outside of) any middleware that uses the session"
            ),
            // The cause is `source()`, not repeated here.
            Kind::Failed(_) => f.write_str("the session could not be loaded"),
        }
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingMiddleware { data_type } => f
                .debug_struct("SessionRejection::MissingMiddleware")
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
            Kind::MissingMiddleware { .. } => None,
        }
    }
}

impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        if let Some(response) = self.response.borrow().as_ref() {
            return response.status();
        }
        match &self.kind {
            Kind::Failed(error) if matches!(**error, SessionError::Store(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(response) = self.response.borrow_mut().take() {
            return *response;
        }
        let body = match &self.kind {
            // A setup bug: say how to fix it.
            Kind::MissingMiddleware { .. } => self.to_string(),
            // Opaque to clients; the cause was logged when it happened.
            Kind::Failed(_) => "session error".to_owned(),
        };
        HttpResponse::build(self.status_code())
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .content_type("text/plain; charset=utf-8")
            .body(body)
    }
}

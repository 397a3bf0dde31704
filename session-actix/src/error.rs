//! What clients get when a session cannot be loaded or saved, and the typed
//! rejection of the [`Session`](crate::Session) extractor.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use sessionkit::adapter::{self, Rejection};
use sessionkit::{CsrfRejection, SessionError};

use crate::middleware::Actix;

/// The signature of an error handler: turns a [`SessionError`] into the
/// response the client gets. See [`SessionMiddlewareBuilder::error_handler`](crate::SessionMiddlewareBuilder::error_handler).
pub type ErrorHandlerFn = dyn Fn(&SessionError, &HttpRequest) -> HttpResponse + Send + Sync;

/// The default error handler: an opaque answer that says nothing about the cause.
///
/// | error | status | body |
/// |---|---|---|
/// | [`SessionError::Store`] (backend down, timeout, corrupt record) | `503 Service Unavailable` | `session storage unavailable` |
/// | [`SessionError::Conflict`] (concurrent requests kept changing the same fields; nothing saved) | `409 Conflict` | `session changed concurrently; retry` |
/// | any other (id generation, encoding, `maxSessionBytes`) | `500 Internal Server Error` | `session error` |
///
/// A store outage is the service being (temporarily) unable to serve, which is
/// what 503 means to clients, load balancers and retry logic; a conflict is
/// worth retrying; every other error is a bug or a limit in this server,
/// hence 500. All carry `Cache-Control: no-store`. The cause is logged by the
/// middleware with `tracing::error!` before any handler runs, default or not.
/// The table is sessionkit's
/// [`default_error_response`](sessionkit::adapter::default_error_response),
/// the axum layer's too.
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
pub fn default_error_handler(error: &SessionError, req: &HttpRequest) -> HttpResponse {
    adapter::default_error_handler::<Actix>(error, req)
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
pub fn default_csrf_handler(rejection: &CsrfRejection, req: &HttpRequest) -> HttpResponse {
    adapter::default_csrf_handler::<Actix>(rejection, req)
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
    rejection: Rejection<Actix>,
    response: RefCell<Option<Box<HttpResponse>>>,
}

impl SessionRejection {
    pub(crate) fn missing<T>() -> Self {
        Self {
            rejection: Rejection::missing::<T>(),
            response: RefCell::new(None),
        }
    }

    /// A failed load and the error handler's answer to it.
    pub(crate) fn failed((rejection, response): (Rejection<Actix>, HttpResponse)) -> Self {
        Self {
            rejection,
            response: RefCell::new(Some(Box::new(response))),
        }
    }

    /// Whether no `SessionMiddleware<T>` was installed on the route (a setup bug).
    #[must_use]
    pub fn is_missing_middleware(&self) -> bool {
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

impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        match self.response.borrow().as_ref() {
            Some(response) => response.status(),
            None => StatusCode::from_u16(self.rejection.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The error handler's answer (once; the cause was logged when it
    /// happened), else the core's default ([`Rejection::response`]).
    fn error_response(&self) -> HttpResponse {
        match self.response.borrow_mut().take() {
            Some(response) => *response,
            None => self.rejection.response(),
        }
    }
}

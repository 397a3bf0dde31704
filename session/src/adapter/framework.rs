//! The web framework an adapter serves, as the core sees it, and the
//! handler slots typed by it.

use std::fmt;
use std::sync::Arc;

use super::{default_csrf_response, default_error_response, Options};
use crate::csrf::CsrfRejection;
use crate::data::SessionData;
use crate::error::SessionError;

/// A web framework, as the core's adapter pieces see it.
///
/// Each adapter implements it once, on a marker type (`sessionkit_actix::Actix`,
/// `sessionkit_axum::Axum`); applications never name it. It says which
/// types the handlers of [`Builder`](super::Builder) take and return, how
/// the core's answers become the framework's responses, and which
/// middleware [`Builder::build`](super::Builder::build) makes. Everything
/// else (the options, the request flow, the rejection table) is the core's,
/// so two adapters cannot disagree.
///
/// A toy framework whose responses are `(status, body)` pairs:
///
/// ```
/// use std::fmt;
/// use std::sync::Arc;
/// use sessionkit::adapter::{Builder, Framework, Options};
/// use sessionkit::{MemoryStore, SessionData, SessionError, SessionManager};
/// # #[derive(sessionkit::SessionData, Default)] struct Counter { visits: u32 }
///
/// struct Toy;
/// struct ToyRequest { method: String, path: String }
/// struct ToyMiddleware<T: SessionData>(Arc<Options<T, Toy>>);
///
/// impl Framework for Toy {
///     type Request = ToyRequest;
///     type Response = (u16, String);
///     type Middleware<T: SessionData> = ToyMiddleware<T>;
///     fn middleware<T: SessionData>(options: Arc<Options<T, Self>>) -> ToyMiddleware<T> {
///         ToyMiddleware(options)
///     }
///     fn plain(status: u16, body: String) -> (u16, String) {
///         (status, body)
///     }
///     fn method_and_path(req: &ToyRequest) -> (&str, &str) {
///         (&req.method, &req.path)
///     }
///     fn missing_middleware(data_type: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "no ToyMiddleware<{data_type}> is installed on this route")
///     }
/// }
///
/// let manager = SessionManager::<Counter>::new(MemoryStore::new());
/// let middleware = Builder::<Counter, Toy>::new(manager)
///     .error_handler(|error, _req| match error {
///         SessionError::Store(_) => (503, "try again shortly".to_owned()),
///         _ => (500, String::new()),
///     })
///     .form_limit(16 * 1024)
///     .build();
/// assert_eq!(middleware.0.form_limit(), 16 * 1024);
/// ```
pub trait Framework: Sized + 'static {
    /// What an error or CSRF rejection handler is shown of the request
    /// (actix-web: its `HttpRequest`; axum: the method and URI).
    type Request;
    /// A response of the framework.
    type Response;
    /// What [`Builder::build`](super::Builder::build) makes: the adapter's
    /// middleware or layer.
    type Middleware<T: SessionData>;

    /// The adapter's middleware around the built options.
    fn middleware<T: SessionData>(options: Arc<Options<T, Self>>) -> Self::Middleware<T>;

    /// A response with this status and body, `Content-Type: text/plain;
    /// charset=utf-8` and `Cache-Control: no-store`: the form of every
    /// answer the core makes (the default handlers, a [`Rejection`](super::Rejection)).
    /// A status the framework refuses becomes `500`.
    fn plain(status: u16, body: String) -> Self::Response;

    /// The request's method and path, for the log lines of session errors
    /// and CSRF refusals.
    fn method_and_path(req: &Self::Request) -> (&str, &str);

    /// What a handler asking for a session of type `data_type` without the
    /// adapter's middleware is told (the body of the `500`): which
    /// middleware is missing and how to install it.
    ///
    /// # Errors
    /// Only the formatter's.
    fn missing_middleware(data_type: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// The signature of an error handler of framework `F`: turns a
/// [`SessionError`] into the response the client gets.
pub type ErrorHandler<F> =
    dyn Fn(&SessionError, &<F as Framework>::Request) -> <F as Framework>::Response + Send + Sync;

/// The signature of a CSRF rejection handler of framework `F`: turns a
/// [`CsrfRejection`] into the response the client gets.
pub type CsrfHandler<F> =
    dyn Fn(&CsrfRejection, &<F as Framework>::Request) -> <F as Framework>::Response + Send + Sync;

/// The default error handler: [`default_error_response`] (opaque: `503`
/// for a store failure, `409` for a conflict, `500` otherwise) as a
/// [`Framework::plain`] response.
#[must_use]
pub fn default_error_handler<F: Framework>(error: &SessionError, _req: &F::Request) -> F::Response {
    let (status, body) = default_error_response(error);
    F::plain(status, body.to_owned())
}

/// The default CSRF rejection handler: [`default_csrf_response`] (`403`,
/// the rejection's message) as a [`Framework::plain`] response.
#[must_use]
pub fn default_csrf_handler<F: Framework>(
    rejection: &CsrfRejection,
    _req: &F::Request,
) -> F::Response {
    let (status, body) = default_csrf_response(rejection);
    F::plain(status, body)
}

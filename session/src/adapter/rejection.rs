//! The rejection table: what a session error is answered with by default,
//! its log line, and the extractors' [`Rejection`].

use std::any::type_name;
use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;

use super::Framework;
use crate::error::SessionError;

/// Logs a session error once, with its whole cause chain, at `error` level,
/// before an adapter answers it.
pub fn log_session_error(error: &SessionError, method: &str, path: &str) {
    tracing::error!(
        error = %crate::ErrorChain(error),
        method,
        path,
        "session error; answering with the session error handler"
    );
}

/// The default answer to a session error, opaque to clients: the status code
/// and a `text/plain` body. Adapters add `Cache-Control: no-store`.
///
/// | error | status | body |
/// |---|---|---|
/// | [`SessionError::Store`] (backend down, timeout, corrupt record) | `503` | `session storage unavailable` |
/// | [`SessionError::Conflict`] (concurrent requests kept changing the same fields; nothing saved) | `409` | `session changed concurrently; retry` |
/// | any other (id generation, encoding, `maxSessionBytes`) | `500` | `session error` |
///
/// ```
/// use sessionkit::adapter::default_error_response;
/// use sessionkit::SessionError;
/// use sessionkit::store::StoreError;
/// let down = SessionError::Store(StoreError::unavailable("refused"));
/// assert_eq!(default_error_response(&down), (503, "session storage unavailable"));
/// ```
#[must_use]
pub fn default_error_response(error: &SessionError) -> (u16, &'static str) {
    match error {
        SessionError::Store(_) => (503, "session storage unavailable"),
        SessionError::Conflict { .. } => (409, "session changed concurrently; retry"),
        _ => (500, "session error"),
    }
}

/// Why an extractor could not give a handler its session: no adapter
/// middleware for that session type on the route (a setup bug), or the
/// session could not be loaded. The framework-independent part of each
/// adapter's `SessionRejection`, which adds the framework's response.
///
/// `Display` says what happened (and for a missing middleware, how to
/// install it: [`Framework::missing_middleware`]); the cause of a failed
/// load is [`source()`](StdError::source), never repeated in `Display`.
///
/// | rejection | status | body ([`Rejection::response`]) |
/// |---|---|---|
/// | no middleware ([`Rejection::missing`]) | `500` | the `Display` text: what to install |
/// | the load failed ([`Rejection::failed`]) | [`default_error_response`] (`503`, `409` or `500`) | its opaque body |
pub struct Rejection<F> {
    kind: Kind,
    _framework: PhantomData<fn() -> F>,
}

enum Kind {
    Missing { data_type: &'static str },
    Failed(Box<SessionError>),
}

impl<F: Framework> Rejection<F> {
    /// No adapter middleware for sessions of type `T` runs outside the
    /// code that asked.
    #[must_use]
    pub fn missing<T>() -> Self {
        Self::of(Kind::Missing {
            data_type: type_name::<T>(),
        })
    }

    /// The session could not be loaded.
    #[must_use]
    pub fn failed(error: SessionError) -> Self {
        Self::of(Kind::Failed(Box::new(error)))
    }

    fn of(kind: Kind) -> Self {
        Self {
            kind,
            _framework: PhantomData,
        }
    }

    /// Whether no adapter middleware was installed (a setup bug).
    #[must_use]
    pub fn is_missing(&self) -> bool {
        matches!(self.kind, Kind::Missing { .. })
    }

    /// The session error, when the session could not be loaded.
    #[must_use]
    pub fn session_error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::Failed(error) => Some(error),
            Kind::Missing { .. } => None,
        }
    }

    /// The status of the default answer (see the table above).
    #[must_use]
    pub fn status(&self) -> u16 {
        match &self.kind {
            Kind::Missing { .. } => 500,
            Kind::Failed(error) => default_error_response(error).0,
        }
    }

    /// The default answer, as a [`Framework::plain`] response (see the
    /// table above). Adapters send it only when there is no error handler's
    /// answer (the cause was logged when it happened).
    #[must_use]
    pub fn response(&self) -> F::Response {
        match &self.kind {
            // A setup bug: say how to fix it.
            Kind::Missing { .. } => F::plain(500, self.to_string()),
            // Opaque to clients.
            Kind::Failed(error) => {
                let (status, body) = default_error_response(error);
                F::plain(status, body.to_owned())
            }
        }
    }
}

impl<F: Framework> fmt::Display for Rejection<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Missing { data_type } => F::missing_middleware(data_type, f),
            // The cause is `source()`, not repeated here.
            Kind::Failed(_) => f.write_str("the session could not be loaded"),
        }
    }
}

impl<F> fmt::Debug for Rejection<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Missing { data_type } => f
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

impl<F: Framework> StdError for Rejection<F> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Failed(error) => Some(error),
            Kind::Missing { .. } => None,
        }
    }
}

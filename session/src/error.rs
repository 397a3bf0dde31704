//! The error every session operation can return.

use crate::data::EncodeError;
use crate::id::{GenerateError, InvalidId};
use crate::store::StoreError;

/// Why a session could not be loaded, changed or saved.
///
/// Integrations answer clients with an opaque status and log this with its
/// cause; see each variant for what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed; nothing was saved.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No new session id could be made.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A field's value could not be encoded; nothing was saved.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The encoded session is larger than `maxSessionBytes`; nothing was saved.
    #[error("the session would be {size} bytes encoded, over maxSessionBytes ({limit}); nothing was saved: store less in the session or raise maxSessionBytes")]
    TooLarge {
        /// The encoded size the save would have produced.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The session cookie of a [`CookieStore`](crate::CookieStore) would be
    /// longer than browsers keep; no cookie was sent, so the client keeps
    /// its previous one.
    #[error("the session cookie would be {size} bytes, over the {limit} a browser keeps; nothing was sent: store less in the session (the cookie store keeps every field in the cookie) or use a server store")]
    CookieTooLarge {
        /// The `Set-Cookie` value's length, name and attributes included.
        size: usize,
        /// [`CookieStore::MAX_COOKIE_BYTES`](crate::CookieStore::MAX_COOKIE_BYTES).
        limit: usize,
    },
    /// A session id given to the store pattern is malformed.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// Concurrent requests kept changing the fields this request's changes
    /// depend on; after `retries` re-applications nothing was saved. The
    /// request can be retried. Adapters answer `409 Conflict` by default.
    #[error("concurrent requests kept changing this session's fields; nothing was saved after {retries} retries: retry the request")]
    Conflict {
        /// How many times the changes were re-applied.
        retries: u32,
    },
}

/// Displays an error followed by each of its causes (`a: b: c`), each once:
/// how sessionkit logs errors at the edge.
///
/// ```
/// use sessionkit::ErrorChain;
/// use sessionkit::store::StoreError;
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let error = StoreError::unavailable(io);
/// assert_eq!(
///     ErrorChain(&error).to_string(),
///     "the session store is unavailable: connection refused"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// [`ErrorChain`] of `error`.
pub(crate) fn chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> ErrorChain<'a> {
    ErrorChain(error)
}

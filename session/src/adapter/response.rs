//! The response side: how the inner service ended, the commit at the end of a request, and what the response gets.

use crate::data::SessionData;
use crate::error::SessionError;
use crate::lifecycle::manager::{PendingSession, ResponseUpdate};

/// How the inner service ended, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered with this HTTP status code.
    Response(u16),
    /// The handler returned an error, which the framework answered with this
    /// status code (actix-web keeps the error on the response).
    HandlerError(u16),
    /// It returned an error instead of a response.
    Error,
}

impl Outcome {
    /// Whether the request failed: a `5xx` answer, a handler error, or no
    /// answer at all. Nothing of a failed request is persisted unless
    /// `saveOnError` is set.
    #[must_use]
    pub fn failed(self) -> bool {
        match self {
            Self::Response(status) => (500..600).contains(&status),
            Self::HandlerError(_) | Self::Error => true,
        }
    }
}

/// Ends one request's session after the inner service: commits it (if it was
/// loaded) and returns what the response must carry. The only place adapters
/// commit a request's session.
///
/// A request that [`Outcome::failed`] persists nothing and sets no id
/// (unless `saveOnError`); one whose inner service returned no response at
/// all commits nothing in any case.
///
/// # Errors
/// [`SessionError`] from the commit; nothing was saved then.
pub async fn end_request<T: SessionData>(
    pending: &PendingSession<T>,
    outcome: Outcome,
) -> Result<ResponseUpdate, SessionError> {
    if outcome == Outcome::Error {
        return Ok(ResponseUpdate::default());
    }
    pending.finish(outcome.failed()).await
}

/// A header map as the core edits it: a response's, for [`write_response`],
/// or a request's, for [`MapHeaders::apply`](super::MapHeaders::apply).
pub trait ResponseHeaders {
    /// Adds a header after any of the same name. `false` when the framework
    /// refuses the name or value (nothing was added).
    fn append(&mut self, name: &str, value: &str) -> bool;
    /// Replaces every header of this name. `false` when refused.
    fn insert(&mut self, name: &str, value: &str) -> bool;
}

/// Writes a commit's [`ResponseUpdate`] into a response: the `Set-Cookie`
/// (appended), the id header (replacing), and, whenever the response sets
/// or clears a session id, `Cache-Control: no-store` **replacing** any value
/// the handler set (a shared cache must never store a session id). An empty
/// update changes nothing.
pub fn write_response(update: ResponseUpdate, headers: &mut impl ResponseHeaders) {
    if update.is_empty() {
        return;
    }
    if let Some(cookie) = update.set_cookie {
        if !headers.append("set-cookie", &cookie) {
            tracing::error!("the session cookie is not a valid header value; not sent");
        }
    }
    if let Some((name, value)) = update.header {
        if !headers.insert(&name, &value) {
            tracing::error!(header = %name, "the session id header is not valid; not sent");
        }
    }
    headers.insert("cache-control", "no-store");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_failure() {
        assert!(!Outcome::Response(200).failed());
        assert!(!Outcome::Response(499).failed());
        assert!(Outcome::Response(503).failed());
        assert!(Outcome::Error.failed());
    }

    #[derive(Default)]
    struct Headers(Vec<(String, String)>);
    impl ResponseHeaders for Headers {
        fn append(&mut self, name: &str, value: &str) -> bool {
            self.0.push((name.to_owned(), value.to_owned()));
            true
        }
        fn insert(&mut self, name: &str, value: &str) -> bool {
            self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self.append(name, value)
        }
    }

    #[test]
    fn response_rule_replaces_cache_control_only_with_an_id() {
        let mut headers = Headers(vec![("Cache-Control".into(), "max-age=60".into())]);
        write_response(ResponseUpdate::default(), &mut headers);
        assert_eq!(headers.0, [("Cache-Control".into(), "max-age=60".into())]);
        write_response(
            ResponseUpdate {
                set_cookie: None,
                header: Some(("X-Session-ID".into(), String::new())),
            },
            &mut headers,
        );
        assert_eq!(
            headers.0,
            [
                ("X-Session-ID".to_owned(), String::new()),
                ("cache-control".to_owned(), "no-store".to_owned())
            ]
        );
    }
}

//! A networked store's failure as the cause of a
//! [`StoreError`](crate::store::StoreError): which backend and server
//! failed, what the operator should check, and the client library's error.
//! Used by the Redis and PostgreSQL stores.

use std::error::Error as StdError;
use std::fmt;

/// "`backend` at `target` failed; `hint`", caused by the client's error.
#[derive(Debug)]
pub(crate) struct BackendFailure {
    backend: &'static str,
    target: String,
    hint: &'static str,
    source: Cause,
}

impl BackendFailure {
    /// `backend` (`Redis`, `PostgreSQL`) at `target` (host, port, database;
    /// never a password) failed with `error`; `hint` says what to check.
    pub(crate) fn new(
        backend: &'static str,
        target: String,
        hint: &'static str,
        error: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            backend,
            target,
            hint,
            source: Cause(Box::new(error)),
        }
    }
}

impl fmt::Display for BackendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} failed; {}",
            self.backend, self.target, self.hint
        )
    }
}

impl StdError for BackendFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// A client library's error as a cause. Both `redis` and `tokio-postgres`
/// print an I/O error's message in their own and also return the I/O error
/// as their `source`, so the chain stops here when the message already says
/// it (each cause once).
#[derive(Debug)]
struct Cause(Box<dyn StdError + Send + Sync>);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let inner = self.0.source()?;
        let printed = self.0.to_string();
        (!printed.contains(&inner.to_string())).then_some(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error, bool);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.1 {
                write!(f, "client error: {}", self.0)
            } else {
                f.write_str("client error")
            }
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_reported_once() {
        let io = || std::io::Error::other("connection refused");
        let repeats = BackendFailure::new("Redis", "h:1".into(), "check it", Outer(io(), true));
        assert_eq!(repeats.to_string(), "Redis at h:1 failed; check it");
        let cause = repeats.source().expect("the client's error");
        assert!(cause.source().is_none(), "already in the client's message");
        let terse = BackendFailure::new("PostgreSQL", "h:2".into(), "check it", Outer(io(), false));
        let cause = terse.source().expect("the client's error");
        assert_eq!(
            cause.source().expect("the I/O error").to_string(),
            "connection refused"
        );
    }
}

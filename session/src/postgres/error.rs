//! PostgreSQL failures as [`StoreError`]s, each with what the operator
//! should check, and the errors of building a store.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;

use crate::backend_failure::BackendFailure;
use crate::store::StoreError;

/// Why a [`PostgresStore`](super::PostgresStore) could not be built or its
/// schema not be brought up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresConfigError {
    /// The URL did not parse.
    #[error("invalid PostgreSQL URL; expected e.g. postgres://user:password@host:5432/database")]
    Url(#[source] tokio_postgres::Error),
    /// A setting is out of range.
    #[error("invalid PostgreSQL store setting: {0}")]
    Setting(&'static str),
    /// The URL asks for TLS (`sslmode=require`) but the `postgres-tls`
    /// feature is off.
    #[error("the PostgreSQL URL requires TLS (sslmode=require): enable sessionkit's `postgres-tls` feature, or use sslmode=disable on a trusted network")]
    TlsUnsupported,
    /// The TLS set-up failed: the root certificate given is not PEM, or
    /// no root certificate could be loaded.
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(String),
    /// The pool could not be built.
    #[error("could not build the PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The schema could not be created or upgraded.
    #[error("could not create or upgrade the session tables in PostgreSQL; check that the user may create tables and functions in the schema, or run PostgresStore::schema_sql yourself and call skip_migration")]
    Migration(#[source] StoreError),
}

/// What kind of failure an error is, decided from its SQLSTATE and whether
/// the connection is gone (pure, for the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The server cannot be reached or dropped the connection.
    Unreachable,
    /// The statement timeout cancelled the statement.
    Timeout,
    /// The store's tables or functions are missing.
    NoSchema,
    /// Bad credentials or no permission.
    Denied,
    /// Anything else the server refused.
    Other,
}

pub(crate) fn classify(code: Option<&SqlState>, closed: bool) -> Kind {
    let Some(code) = code else {
        // No SQLSTATE: an I/O, protocol or connection error.
        return Kind::Unreachable;
    };
    if closed {
        return Kind::Unreachable;
    }
    let text = code.code();
    if *code == SqlState::QUERY_CANCELED {
        Kind::Timeout
    } else if text.starts_with("08")
        || text.starts_with("57P")
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        // Connection exceptions, admin shutdown / terminate_backend,
        // crash shutdown, cannot connect now.
        Kind::Unreachable
    } else if *code == SqlState::UNDEFINED_TABLE
        || *code == SqlState::UNDEFINED_FUNCTION
        || *code == SqlState::INVALID_SCHEMA_NAME
    {
        Kind::NoSchema
    } else if text.starts_with("28") || *code == SqlState::INSUFFICIENT_PRIVILEGE {
        Kind::Denied
    } else {
        Kind::Other
    }
}

/// Whether the operation may be retried on another connection: the
/// connection it ran on is gone.
pub(crate) fn connection_lost(error: &tokio_postgres::Error) -> bool {
    error.is_closed() || classify(error.code(), false) == Kind::Unreachable
}

pub(crate) fn pg_error(
    error: tokio_postgres::Error,
    target: &str,
    statement_timeout: Duration,
) -> StoreError {
    let kind = classify(error.code(), error.is_closed());
    let hint = match kind {
        Kind::Timeout => return StoreError::Timeout(statement_timeout),
        Kind::Unreachable => {
            "check that PostgreSQL is running and reachable from this host and that the store URL is right"
        }
        Kind::NoSchema => {
            "the session tables or functions are missing: let the store create them (do not call skip_migration) or run PostgresStore::schema_sql"
        }
        Kind::Denied => "check the user name, password and grants in the store URL",
        Kind::Other => "check the PostgreSQL server log",
    };
    let failure = BackendFailure::new("PostgreSQL", target.to_owned(), hint, error);
    if kind == Kind::Unreachable {
        StoreError::unavailable(failure)
    } else {
        StoreError::backend(failure)
    }
}

pub(crate) fn pool_error(
    error: PoolError,
    target: &str,
    statement_timeout: Duration,
) -> StoreError {
    match error {
        PoolError::Backend(error) => pg_error(error, target, statement_timeout),
        PoolError::Timeout(TimeoutType::Wait) => StoreError::unavailable(format!(
            "every pooled connection to PostgreSQL at {target} stayed busy past the wait timeout; raise pool_size or look for slow statements"
        )),
        PoolError::Timeout(TimeoutType::Create) => StoreError::unavailable(format!(
            "could not connect to PostgreSQL at {target} within the connect timeout; check that it is running and reachable"
        )),
        PoolError::Timeout(TimeoutType::Recycle) => StoreError::Timeout(statement_timeout),
        other => StoreError::unavailable(format!("PostgreSQL connection pool at {target}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        assert_eq!(classify(None, false), Kind::Unreachable);
        assert_eq!(
            classify(Some(&SqlState::QUERY_CANCELED), false),
            Kind::Timeout
        );
        assert_eq!(
            classify(Some(&SqlState::ADMIN_SHUTDOWN), false),
            Kind::Unreachable
        );
        assert_eq!(
            classify(Some(&SqlState::CONNECTION_FAILURE), false),
            Kind::Unreachable
        );
        assert_eq!(
            classify(Some(&SqlState::UNDEFINED_FUNCTION), false),
            Kind::NoSchema
        );
        assert_eq!(
            classify(Some(&SqlState::INVALID_PASSWORD), false),
            Kind::Denied
        );
        assert_eq!(
            classify(Some(&SqlState::UNIQUE_VIOLATION), false),
            Kind::Other
        );
        assert_eq!(
            classify(Some(&SqlState::UNIQUE_VIOLATION), true),
            Kind::Unreachable
        );
    }
}

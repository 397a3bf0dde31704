//! What a request gets when the session store fails: an error (the
//! default), or an anonymous session that lives only in memory.
//!
//! The policy is chosen per request by the adapter (per middleware, so one
//! application can keep public pages up while pages that need a login fail):
//! adapters call
//! [`PendingSession::with_failure_policy`](crate::adapter::PendingSession::with_failure_policy)
//! on what [`SessionManager::begin`](crate::SessionManager::begin) returns and
//! otherwise use `load` and `finish` as usual; the policy is applied inside
//! them (`lifecycle/manager/pending.rs`). This module holds the policy and
//! its one decision.

use serde::{Deserialize, Serialize};

use crate::error::SessionError;

/// What a request gets when loading or saving its session fails because
/// the store failed ([`SessionError::Store`]). Other errors always fail
/// the request.
///
/// In configuration files: `fail` or `anonymous`.
///
/// ```
/// use sessionkit::{FailurePolicy, MemoryStore, SessionManager};
/// # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
/// let manager = SessionManager::<Data>::new(MemoryStore::new());
/// // What an adapter does per request:
/// let pending = manager.begin().with_failure_policy(FailurePolicy::Anonymous);
/// assert_eq!(pending.failure_policy(), FailurePolicy::Anonymous);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// The request fails: adapters answer with their error handler (an
    /// opaque `503` by default).
    #[default]
    Fail,
    /// The request runs with a fresh, empty session that is never written
    /// to the store and never sends or clears an id
    /// ([`Session::degraded`](crate::Session::degraded) says so); a failure to save after the handler
    /// ran is logged and the response kept. The client keeps the id it
    /// has, so its session is back once the store is.
    Anonymous,
}

impl FailurePolicy {
    /// Whether this policy lets the request go on despite `error`: only a
    /// store failure, and only under [`FailurePolicy::Anonymous`].
    pub(crate) fn absorbs(self, error: &SessionError) -> bool {
        self == Self::Anonymous && matches!(error, SessionError::Store(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn only_store_failures_under_anonymous_are_absorbed() {
        let store = SessionError::Store(StoreError::Unsupported("x"));
        let conflict = SessionError::Conflict { retries: 1 };
        assert!(FailurePolicy::Anonymous.absorbs(&store));
        assert!(!FailurePolicy::Anonymous.absorbs(&conflict));
        assert!(!FailurePolicy::Fail.absorbs(&store));
    }
}

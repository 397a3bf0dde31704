//! What a request gets when the session store fails: an error (the
//! default), or an anonymous session that lives only in memory.
//!
//! The policy is chosen per request by the adapter (per middleware, so one
//! application can keep public pages up while pages that need a login fail):
//! adapters call [`PendingSession::with_failure_policy`] on what
//! [`SessionManager::begin`](crate::SessionManager::begin) returns and
//! otherwise use [`PendingSession::load`] and [`PendingSession::finish`] as
//! usual; the policy is applied inside them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::SessionData;
use crate::error::{ErrorChain, SessionError};
use crate::manager::PendingSession;
use crate::plan::IdWrite;
use crate::session::Session;

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
    /// ([`Session::degraded`] says so); a failure to save after the handler
    /// ran is logged and the response kept. The client keeps the id it
    /// has, so its session is back once the store is.
    Anonymous,
}

impl<T: SessionData> PendingSession<T> {
    /// Applies `policy` to this request's store failures (default
    /// [`FailurePolicy::Fail`]). The call adapters make once per request,
    /// right after [`SessionManager::begin`](crate::SessionManager::begin).
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy for this request's store failures.
    #[must_use]
    pub fn failure_policy(&self) -> FailurePolicy {
        self.policy
    }
}

/// A load's result under the request's policy: under `Anonymous` a store
/// failure becomes a degraded session, kept for the rest of the request.
pub(crate) fn on_load<T: SessionData>(
    pending: &PendingSession<T>,
    result: Result<Session<T>, SessionError>,
) -> Result<Session<T>, SessionError> {
    let error = match result {
        Err(SessionError::Store(error)) if pending.policy == FailurePolicy::Anonymous => error,
        other => return other,
    };
    tracing::warn!(
        error = %ErrorChain(&error),
        "the session store failed; this request runs with an anonymous session that is not saved"
    );
    let ctx = &pending.manager.ctx;
    ctx.observer.degraded();
    let id = ctx.ids.generate()?;
    let session = Session::new_degraded(Arc::clone(ctx), id, ctx.clock.now_ms());
    // A concurrent load of the same request may have set the cell first.
    let _ = pending.session.set(session.clone());
    Ok(pending.session.get().cloned().unwrap_or(session))
}

/// A commit's result under the request's policy: under `Anonymous` a store
/// failure is logged and the response goes out without any id change.
pub(crate) fn on_commit<T: SessionData>(
    pending: &PendingSession<T>,
    result: Result<IdWrite, SessionError>,
) -> Result<IdWrite, SessionError> {
    match result {
        Err(SessionError::Store(error)) if pending.policy == FailurePolicy::Anonymous => {
            tracing::warn!(
                error = %ErrorChain(&error),
                "the session store failed; this request's session changes were not saved"
            );
            Ok(IdWrite::Nothing)
        }
        other => other,
    }
}

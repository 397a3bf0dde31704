//! Listing and revoking a principal's sessions against the store: the I/O
//! behind [`SessionManager::list_sessions`](crate::SessionManager::list_sessions)
//! and its `revoke_*` siblings, and behind `maxSessionsPerUser` after a
//! login. The decisions (which sessions to evict) are pure functions in
//! `principal.rs`; the guarantee these calls give is stated there.

use crate::context::Context;
use crate::data::SessionData;
use crate::error::SessionError;
use crate::principal::{evictions, Principal, SessionHandle, Take};
use crate::record::Record;
use crate::store::{no_index, DynPrincipalIndex, StoreError};

/// The live sessions of `principal`, decoded, each checked to still have it.
pub(crate) async fn live_sessions<T: SessionData>(
    ctx: &Context,
    principal: &Principal,
    now: u64,
) -> Result<Vec<(SessionHandle, Record, T)>, SessionError> {
    let found = index(ctx)?.principal_sessions_boxed(principal, now).await?;
    Ok(found
        .into_iter()
        .filter(|(_, record)| !record.meta.is_expired(now))
        .filter_map(|(handle, record)| {
            let data = crate::data::decode_fields::<T>(&record.fields);
            let owner = data.principal_key().and_then(|key| Principal::of(&*key));
            (owner.as_ref() == Some(principal)).then_some((handle, record, data))
        })
        .collect())
}

/// Revokes the sessions `take` names: one store call, which the store
/// makes retry-safe (see [`PrincipalIndex::revoke_principal_sessions`]).
///
/// [`PrincipalIndex::revoke_principal_sessions`]: crate::store::PrincipalIndex::revoke_principal_sessions
pub(crate) async fn revoke(
    ctx: &Context,
    principal: &Principal,
    take: Take<'_>,
) -> Result<usize, SessionError> {
    let now = ctx.clock.now_ms();
    Ok(index(ctx)?
        .revoke_principal_sessions_boxed(principal, take, now)
        .await?)
}

/// The store's principal index, or the `Unsupported` error that says the
/// store keeps none (the cookie store's says why it cannot).
fn index(ctx: &Context) -> Result<&dyn DynPrincipalIndex, StoreError> {
    match ctx.cookie {
        Some(_) => Err(crate::cookie_store::no_server_state()),
        None => ctx.store.principal_index_dyn().ok_or_else(no_index),
    }
}

/// `maxSessionsPerUser`: revokes the least recently used sessions of
/// `principal` beyond `cap`, never `current` (the commit's
/// [`Action::Evict`](crate::lifecycle::commit::Action::Evict) after a write
/// that gave the session its principal). Failures are logged, not returned:
/// the login itself succeeded.
pub(crate) async fn evict_over_cap<T: SessionData>(
    ctx: &Context,
    principal: &Principal,
    current: &SessionHandle,
    cap: usize,
    now: u64,
) {
    let result = async {
        let live = live_sessions::<T>(ctx, principal, now).await?;
        if live.len() <= cap {
            return Ok(0);
        }
        let sessions: Vec<_> = live
            .iter()
            .map(|(h, r, _)| (h.clone(), r.meta.last_access, r.meta.created_at))
            .collect();
        let evict = evictions(cap, current, &sessions);
        revoke(ctx, principal, Take::These(&evict)).await
    }
    .await;
    match result {
        Ok(0) => {}
        Ok(evicted) => tracing::debug!(
            evicted,
            "maxSessionsPerUser: revoked the least recently used sessions"
        ),
        Err(error) => tracing::warn!(
            error = %crate::error::chain(&error),
            "maxSessionsPerUser: could not revoke the least recently used sessions; the login succeeded"
        ),
    }
}

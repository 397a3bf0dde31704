//! The principal index in Redis: one sorted set per principal, and the
//! principal part of session writes.
//!
//! # Layout
//!
//! | key | type | holds |
//! |---|---|---|
//! | `prefix + "principal:" + px` | ZSET | member: a session's handle (the last 43 characters of its key); score: the entry's deadline (ms) |
//!
//! `px` = base64url(SHA-256(principal key)), so no user id or e-mail
//! address appears in a key name. A session with a principal also holds two
//! hash fields: `$px` (that hash: whose index lists it) and `$pd` (its
//! entry's deadline). Sessions without a principal have neither, and their
//! writes carry no principal arguments: they cost nothing more.
//!
//! # The entry deadline
//!
//! An entry's score is a deadline the session can never outlive: when a
//! session is indexed (login, id rotation) its entry holds for three idle
//! timeouts (never past the absolute deadline, which the session cannot
//! outlive either). A later write that would let the session live within
//! half an idle timeout of that deadline first extends the entry (the write
//! script answers `reindex` and applies nothing; the store extends the entry,
//! then writes again): one extra round trip once per 1.5 idle timeouts of
//! activity, and none at all while auto-renew rotates the id more often than
//! that (each rotation re-indexes with a fresh deadline). Hence:
//!
//! - every operation on the index drops entries whose deadline has passed
//!   (`ZREMRANGEBYSCORE`): their sessions have certainly expired, so an
//!   abandoned principal's index shrinks to nothing and the key's own TTL
//!   (the latest deadline) removes it: no keyspace notifications needed;
//! - entries of deleted sessions are dropped when the index is listed, and
//!   in any case by their deadline.
//!
//! # Round trips
//!
//! | write | extra round trips |
//! |---|---|
//! | no principal | none |
//! | keeps its principal, no rotation | none (1 + 1 once per 1.5 idle timeouts, see above) |
//! | takes a principal (login) | 1: `add` the new id to the index first |
//! | rotation keeping the principal | 1: `move` (add the new id only if the old one is still listed) |
//! | drops its principal | none (`$px`, `$pd` deleted in the same script) |
//!
//! Listing is one `members` call plus the sessions' `HGETALL`s, sent
//! concurrently (pipelined on the multiplexed connections; in a cluster
//! the nodes work in parallel). Revocation is one `take` plus two concurrent
//! batches of conditional deletes.
//!
//! In a cluster the index and its sessions live in different slots: each
//! step above is its own round trip and the ordering (index first, then the
//! session) is what keeps the index a superset of the live sessions.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use base64::Engine as _;
use deadpool_redis::redis::Value;
use sha2::{Digest, Sha256};

use super::codec::{self, Arg, Mode, PrincipalArgs, Stored, MAX_TTL_MS};
use super::scripts::Which;
use super::{flat_bytes, unexpected, written, Op, RedisStore, WRONG_TYPE};
use crate::principal::{Principal, PrincipalWrite, SessionHandle, Take};
use crate::record::{Meta, Record};
use crate::store::{StoreError, Write, WriteKind, Written};

/// How many requests one batch sends at once.
const BATCH: usize = 64;

/// The principal hash: what `$px` holds and the index key ends with.
pub(super) fn principal_hash(principal: &Principal) -> String {
    let digest = Sha256::digest(principal.as_str().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The index key of a principal hash.
pub(super) fn index_key(prefix: &str, px: &str) -> String {
    format!("{prefix}principal:{px}")
}

/// The deadline of an entry made at `now` for a session with `meta`: three
/// idle timeouts, never past the absolute deadline.
pub(super) fn deadline(meta: &Meta, now: u64) -> u64 {
    let idle = now.saturating_add(meta.idle_timeout_ms.saturating_mul(3));
    let cap = now.saturating_add(MAX_TTL_MS);
    meta.absolute_deadline
        .map_or(idle, |abs| abs.min(idle))
        .min(cap)
}

/// The deadline an entry must still have after a write at `now` that gives
/// the session `ttl_ms` more: its new expiry plus half an idle timeout of
/// margin (for clocks of several app servers), never past the absolute
/// deadline.
pub(super) fn due(meta: &Meta, now: u64, ttl_ms: u64) -> u64 {
    let margin = now
        .saturating_add(ttl_ms)
        .saturating_add(meta.idle_timeout_ms / 2);
    meta.absolute_deadline.map_or(margin, |abs| abs.min(margin))
}

/// A write of a session that has or had a principal.
pub(super) async fn write(
    store: &RedisStore,
    write: &Write,
    change: &PrincipalWrite,
) -> Result<Written, StoreError> {
    let d = deadline(&write.meta, write.now);
    match (change, &write.kind) {
        (PrincipalWrite::Leave, _) => store.write_record(write, Some(&PrincipalArgs::Leave)).await,
        (PrincipalWrite::Keep(_), WriteKind::Update) => keep(store, write).await,
        (PrincipalWrite::Keep(principal), WriteKind::Rotate { to, .. }) => {
            let px = principal_hash(principal);
            let from = SessionHandle::of(&write.id);
            let to = SessionHandle::of(to);
            let moved = index_op(
                store,
                &px,
                b"move",
                write.now,
                &[
                    from.as_str().as_bytes(),
                    to.as_str().as_bytes(),
                    d.to_string().as_bytes(),
                ],
            )
            .await?;
            if moved == Value::Int(0) {
                // The entry was taken: the session is being revoked.
                return Ok(Written::Gone);
            }
            store
                .write_record(write, Some(&PrincipalArgs::Set { px, deadline: d }))
                .await
        }
        (PrincipalWrite::Join(principal) | PrincipalWrite::Keep(principal), kind) => {
            let px = principal_hash(principal);
            let target = match kind {
                WriteKind::Rotate { to, .. } => to,
                WriteKind::Create | WriteKind::Update => &write.id,
            };
            let handle = SessionHandle::of(target);
            index_op(
                store,
                &px,
                b"add",
                write.now,
                &[handle.as_str().as_bytes(), d.to_string().as_bytes()],
            )
            .await?;
            store
                .write_record(write, Some(&PrincipalArgs::Set { px, deadline: d }))
                .await
        }
    }
}

/// An update of a session that keeps its principal: extends the entry
/// first when the script says it is due (at most twice: a concurrent change
/// of the principal can make the first extension the wrong one).
async fn keep(store: &RedisStore, write: &Write) -> Result<Written, StoreError> {
    let key = store.key_for(&write.id);
    let due = due(&write.meta, write.now, write.ttl_ms);
    let mut refreshed = None;
    for _ in 0..3 {
        let part = PrincipalArgs::Keep {
            refreshed: refreshed.clone(),
            due,
        };
        let args = codec::write_args(
            Mode::Update,
            write,
            &write.set,
            &write.expect,
            None,
            Some(&part),
        )
        .map_err(StoreError::Corrupt)?;
        let reply = store.script(Which::Write, &[&key], &args).await?;
        let Some(px) = reindex(&reply) else {
            return written(reply, &write.id);
        };
        let d = deadline(&write.meta, write.now);
        let handle = SessionHandle::of(&write.id);
        let extended = index_op(
            store,
            &px,
            b"refresh",
            write.now,
            &[handle.as_str().as_bytes(), d.to_string().as_bytes()],
        )
        .await?;
        if extended == Value::Int(0) {
            // Not listed any more: revoked (or expired).
            return Ok(Written::Gone);
        }
        refreshed = Some((px, d));
    }
    Err(StoreError::Corrupt(
        "the write script kept asking for the principal index to be extended".into(),
    ))
}

/// The principal hash of a `{'reindex', px}` reply.
fn reindex(reply: &Value) -> Option<String> {
    let Value::Array(items) = reply else {
        return None;
    };
    match items.as_slice() {
        [Value::BulkString(tag), Value::BulkString(px)] if tag == b"reindex" => {
            String::from_utf8(px.clone()).ok()
        }
        _ => None,
    }
}

/// Runs one index operation on the index of principal hash `px`.
async fn index_op(
    store: &RedisStore,
    px: &str,
    op: &'static [u8],
    now: u64,
    rest: &[&[u8]],
) -> Result<Value, StoreError> {
    let key = index_key(&store.inner.prefix, px);
    let mut args: Vec<Arg<'_>> = Vec::with_capacity(2 + rest.len());
    args.push(Arg::Borrowed(op));
    args.push(Arg::Owned(now.to_string().into_bytes()));
    args.extend(rest.iter().map(|a| Arg::Borrowed(*a)));
    store.script(Which::Index, &[&key], &args).await
}

/// The handles in a `members` or `take` reply.
fn handles(reply: Value) -> Result<Vec<SessionHandle>, StoreError> {
    let Value::Array(items) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            other => Err(unexpected("index", &other)),
        };
    };
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            Value::BulkString(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| SessionHandle::parse(text).ok()),
            _ => None,
        })
        .collect())
}

/// The principal's indexed sessions that are still stored; entries whose
/// key is gone (or only a rotation tombstone) are dropped.
pub(super) async fn list(
    store: &RedisStore,
    principal: &Principal,
    now: u64,
) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
    let px = principal_hash(principal);
    let members = handles(index_op(store, &px, b"members", now, &[]).await?)?;
    let loads: Vec<_> = members.iter().map(|handle| load(store, handle)).collect();
    let mut found = Vec::with_capacity(members.len());
    let mut dead = Vec::new();
    for (handle, loaded) in members.iter().zip(batched(loads.into_iter()).await) {
        match loaded? {
            Some(record) if !record.meta.is_expired(now) => found.push((handle.clone(), record)),
            _ => dead.push(handle.as_str().as_bytes()),
        }
    }
    if !dead.is_empty() {
        index_op(store, &px, b"drop", now, &dead).await?;
    }
    Ok(found)
}

/// The session a handle names, if the store holds one (not a tombstone).
async fn load(store: &RedisStore, handle: &SessionHandle) -> Result<Option<Record>, StoreError> {
    let key = codec::handle_key(&store.inner.prefix, handle);
    let flat = match store.run(Op::HGetAll(&key)).await {
        Ok(reply) => flat_bytes(reply)?,
        Err(StoreError::Corrupt(why)) if why == WRONG_TYPE => Vec::new(),
        Err(error) => return Err(error),
    };
    Ok(match codec::decode(flat) {
        Ok(Stored::Session(record)) => Some(record),
        // Gone, a tombstone (its new id has its own entry) or unreadable.
        Ok(Stored::Tombstone { .. }) | Err(_) => None,
    })
}

/// Removes the entries `take` names and returns them.
pub(super) async fn take(
    store: &RedisStore,
    principal: &Principal,
    take: Take<'_>,
) -> Result<Vec<SessionHandle>, StoreError> {
    let px = principal_hash(principal);
    // The time only prunes entries whose deadline has passed; take them
    // all the same (0: prune nothing).
    let reply = match take {
        Take::All => index_op(store, &px, b"take", 0, &[b"all"]).await?,
        Take::AllExcept(keep) => {
            index_op(
                store,
                &px,
                b"take",
                0,
                &[b"except", keep.as_str().as_bytes()],
            )
            .await?
        }
        Take::These(these) => {
            let mut rest: Vec<&[u8]> = vec![b"these"];
            rest.extend(these.iter().map(|h| h.as_str().as_bytes()));
            index_op(store, &px, b"take", 0, &rest).await?
        }
    };
    handles(reply)
}

/// Deletes each session that still belongs to `principal`, following
/// rotation tombstones; returns how many were deleted.
pub(super) async fn delete(
    store: &RedisStore,
    principal: &Principal,
    sessions: &[SessionHandle],
) -> Result<usize, StoreError> {
    let px = principal_hash(principal);
    let deletes: Vec<_> = sessions
        .iter()
        .map(|handle| delete_owned(store, &px, handle))
        .collect();
    let mut deleted = 0;
    for result in batched(deletes.into_iter()).await {
        if result? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the session `handle` names if its `$px` is `px`, following
/// tombstones.
async fn delete_owned(
    store: &RedisStore,
    px: &str,
    handle: &SessionHandle,
) -> Result<bool, StoreError> {
    let hops: &[u8] = if store.is_cluster() { b"1" } else { b"4" };
    let mut key = codec::handle_key(&store.inner.prefix, handle);
    for _ in 0..4 {
        let args = [Arg::Borrowed(px.as_bytes()), Arg::Borrowed(hops)];
        match store.script(Which::DeleteOwned, &[&key], &args).await? {
            Value::Int(1) => return Ok(true),
            Value::Int(0) => return Ok(false),
            Value::BulkString(next) => {
                key = String::from_utf8(next).map_err(|_| {
                    StoreError::Corrupt("a tombstone names a key that is not UTF-8".into())
                })?;
            }
            other => return Err(unexpected("delete owned", &other)),
        }
    }
    Ok(false)
}

/// Runs the futures [`BATCH`] at a time, each batch concurrently; results in order.
async fn batched<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let mut futures = futures.peekable();
    while futures.peek().is_some() {
        out.extend(join_all(futures.by_ref().take(BATCH)).await);
    }
    out
}

/// Polls every future until all are done; results in order.
async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, slot) in pending.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *slot = Some(value),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn entries_outlive_their_sessions_with_margin() {
        let meta = Meta::new(0, 30 * MIN, None);
        assert_eq!(deadline(&meta, 0), 90 * MIN);
        // Right after indexing, a write is not due; it becomes due once the
        // session could live within half an idle timeout of the deadline.
        assert!(due(&meta, 0, 30 * MIN) < deadline(&meta, 0));
        assert!(due(&meta, 44 * MIN, 30 * MIN) < 90 * MIN);
        assert!(due(&meta, 46 * MIN, 30 * MIN) > 90 * MIN);
        // The absolute deadline caps both: never due again.
        let bounded = Meta::new(0, 30 * MIN, Some(60 * MIN));
        assert_eq!(deadline(&bounded, 0), 60 * MIN);
        assert!(due(&bounded, 59 * MIN, MIN) <= 60 * MIN);
        // Remember-me timeouts do not overflow.
        let long = Meta::new(0, u64::MAX / 2, None);
        assert!(deadline(&long, 1) <= 1 + MAX_TTL_MS);
        assert_eq!(due(&long, 1, u64::MAX), u64::MAX);
    }

    #[test]
    fn keys_hold_no_principal_in_clear() {
        let p = Principal::of("alice@example.com").unwrap();
        let px = principal_hash(&p);
        assert_eq!(px.len(), 43);
        assert!(!px.contains("alice"));
        assert_eq!(index_key("app:", &px), format!("app:principal:{px}"));
    }

    #[test]
    fn reindex_replies_are_recognized() {
        let reply = Value::Array(vec![
            Value::BulkString(b"reindex".to_vec()),
            Value::BulkString(b"abc".to_vec()),
        ]);
        assert_eq!(reindex(&reply).as_deref(), Some("abc"));
        assert_eq!(reindex(&Value::Int(1)), None);
    }

    #[test]
    fn join_all_keeps_the_order() {
        let futures = (0..200).map(|i| async move { i * 2 });
        let out = futures_block_on(batched(futures));
        assert_eq!(out, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    }

    fn futures_block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}

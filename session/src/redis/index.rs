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
//! - an entry is otherwise removed only by whoever knows its session is
//!   gone: the session's delete, its revocation (`drop` after the deletes),
//!   the rotation that moved it (`retire`: the old entry lapses with the
//!   grace period), or a listing that read the record and found it expired.
//!   A listing never drops an entry whose record it did not find: that may
//!   be a login or rotation whose record step has not run yet.
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
//! the nodes work in parallel). Revocation is one `mark`, two concurrent
//! batches of conditional deletes, and one `drop` (see `revoke`).
//!
//! The index step and the session step are separate round trips (in a
//! cluster also different slots): the ordering (index first, then the
//! session) and "only who knows a session is gone removes its entry" are
//! what keep every live session listed. `examples/tests/gateway_index_races.rs`
//! holds a login between the two steps and cuts a revocation between its
//! steps, over HTTP.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_redis::redis::Value;

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
    principal.hashed()
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
                // Not listed, or marked: the session is being revoked.
                return Ok(Written::Gone);
            }
            let written = store
                .write_record(
                    write,
                    Some(&PrincipalArgs::Set {
                        px: px.clone(),
                        deadline: d,
                    }),
                )
                .await?;
            if written == Written::Done {
                retire(store, &px, &from, write).await;
            }
            Ok(written)
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

/// The handles in a `members` or `mark` reply (marks taken off).
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
                .map(|text| text.strip_prefix('!').unwrap_or(text))
                .and_then(|text| SessionHandle::parse(text).ok()),
            _ => None,
        })
        .collect())
}

/// After a rotation applied: the old id's entry is needed only while its
/// tombstone forwards (a revocation follows it), so its deadline is lowered
/// to the end of the grace period (now, without grace). A failure here
/// leaves the entry until its own deadline, which is harmless: listing
/// skips tombstones and revocation follows them.
async fn retire(store: &RedisStore, px: &str, from: &SessionHandle, write: &Write) {
    let grace = match &write.kind {
        WriteKind::Rotate { grace_ms, .. } => *grace_ms,
        WriteKind::Create | WriteKind::Update => 0,
    };
    let until = write.now.saturating_add(grace).to_string();
    let result = index_op(
        store,
        px,
        b"retire",
        write.now,
        &[from.as_str().as_bytes(), until.as_bytes()],
    )
    .await;
    if let Err(error) = result {
        tracing::debug!(
            error = %crate::error::chain(&error),
            "could not shorten a rotated-away id's index entry; it lapses by its deadline"
        );
    }
}

/// The principal's indexed sessions that are still stored (marked ones,
/// being revoked, included). Only entries of sessions expired by their own
/// timestamps are removed: an entry without a record
/// may belong to a login or rotation whose record step has not run yet
/// (see "The index contract" on `PrincipalIndex`).
pub(super) async fn list(
    store: &RedisStore,
    principal: &Principal,
    now: u64,
) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
    let px = principal_hash(principal);
    let mut members = handles(index_op(store, &px, b"members", now, &[]).await?)?;
    members.sort();
    members.dedup();
    let loads: Vec<_> = members.iter().map(|handle| load(store, handle)).collect();
    let mut found = Vec::with_capacity(members.len());
    let mut expired = Vec::new();
    for (handle, loaded) in members.iter().zip(batched(loads.into_iter()).await) {
        match loaded? {
            // Expired by its own timestamps: provably dead, never served again.
            Some(record) if record.meta.is_expired(now) => expired.push(handle.as_str().as_bytes()),
            Some(record) => found.push((handle.clone(), record)),
            // No record yet (or any more): left to whoever knows.
            None => {}
        }
    }
    if !expired.is_empty() {
        index_op(store, &px, b"drop", now, &expired).await?;
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

/// Revokes the sessions `take` names (see "The revocation contract" on
/// `PrincipalIndex::revoke_principal_sessions`):
///
/// 1. `mark` the entries: from then on they are still listed, but a
///    rotation's `move` fails on them (`Gone`), so no marked session moves
///    to an id this revocation does not know;
/// 2. for "all but the caller's", find the ids the caller's id forwards to
///    (it may have been renewed since the caller loaded it) and keep them;
/// 3. delete every marked session that still belongs to the principal,
///    following tombstones but never into a kept key, twice (a rotation
///    whose `move` ran just before the mark may create its new id after the
///    first pass looked there; that id was marked, so the second pass
///    deletes it);
/// 4. `drop` the entries.
///
/// A failure in 2–4 leaves the entries marked and listed; the same call
/// again marks nothing new, finds them, and finishes.
pub(super) async fn revoke(
    store: &RedisStore,
    principal: &Principal,
    take: Take<'_>,
    now: u64,
) -> Result<usize, StoreError> {
    let px = principal_hash(principal);
    let (marked, kept) = match take {
        Take::All => (mark(store, &px, now, b"all", &[]).await?, Vec::new()),
        Take::AllExcept(keep) => {
            let kept = forwards_of(store, keep).await?;
            let names: Vec<&[u8]> = kept.iter().map(|h| h.as_str().as_bytes()).collect();
            (mark(store, &px, now, b"except", &names).await?, kept)
        }
        Take::These(these) => {
            let names: Vec<&[u8]> = these.iter().map(|h| h.as_str().as_bytes()).collect();
            (mark(store, &px, now, b"these", &names).await?, Vec::new())
        }
    };
    if marked.is_empty() {
        return Ok(0);
    }
    let kept_keys: Vec<String> = kept
        .iter()
        .map(|h| codec::handle_key(&store.inner.prefix, h))
        .collect();
    let mut deleted = 0;
    for _pass in 0..2 {
        let deletes: Vec<_> = marked
            .iter()
            .map(|handle| delete_owned(store, &px, handle, &kept_keys))
            .collect();
        for result in batched(deletes.into_iter()).await {
            if result? {
                deleted += 1;
            }
        }
    }
    let names: Vec<&[u8]> = marked.iter().map(|h| h.as_str().as_bytes()).collect();
    index_op(store, &px, b"drop", now, &names).await?;
    Ok(deleted)
}

/// Marks entries (`mode`: `all`, `except` + kept handles, `these` +
/// handles) and returns every marked entry named.
async fn mark(
    store: &RedisStore,
    px: &str,
    now: u64,
    mode: &'static [u8],
    names: &[&[u8]],
) -> Result<Vec<SessionHandle>, StoreError> {
    let mut rest: Vec<&[u8]> = Vec::with_capacity(1 + names.len());
    rest.push(mode);
    rest.extend_from_slice(names);
    handles(index_op(store, px, b"mark", now, &rest).await?)
}

/// `handle` and the handles of the ids its session was rotated to since,
/// following its tombstones (at most 4 hops).
async fn forwards_of(
    store: &RedisStore,
    handle: &SessionHandle,
) -> Result<Vec<SessionHandle>, StoreError> {
    let mut chain = vec![handle.clone()];
    let mut key = codec::handle_key(&store.inner.prefix, handle);
    for _ in 0..4 {
        let flat = match store.run(Op::HGetAll(&key)).await {
            Ok(reply) => flat_bytes(reply)?,
            Err(StoreError::Corrupt(why)) if why == WRONG_TYPE => return Ok(chain),
            Err(error) => return Err(error),
        };
        let Ok(Stored::Tombstone { to, .. }) = codec::decode(flat) else {
            return Ok(chain);
        };
        let Ok(to_key) = String::from_utf8(to) else {
            return Ok(chain);
        };
        let Some(next) = to_key
            .strip_prefix(store.inner.prefix.as_str())
            .and_then(|rest| SessionHandle::parse(rest).ok())
        else {
            return Ok(chain);
        };
        key = to_key;
        chain.push(next);
    }
    Ok(chain)
}

/// After a delete (a logout): drops the deleted keys' entries from the
/// index of the principal hash the session held. A failure leaves them to
/// their deadlines (listing skips what is gone).
pub(super) async fn forget(store: &RedisStore, px: &str, keys: &[String]) {
    let prefix = store.inner.prefix.as_str();
    let names: Vec<&[u8]> = keys
        .iter()
        .filter_map(|key| key.strip_prefix(prefix))
        .map(str::as_bytes)
        .collect();
    // The time only prunes entries whose deadline passed; a delete has no
    // clock (0: prune nothing).
    if let Err(error) = index_op(store, px, b"drop", 0, &names).await {
        tracing::debug!(
            error = %crate::error::chain(&error),
            "could not drop a deleted session's index entry; it lapses by its deadline"
        );
    }
}

/// Deletes the session `handle` names if its `$px` is `px`, following
/// tombstones but never into a `kept` key.
async fn delete_owned(
    store: &RedisStore,
    px: &str,
    handle: &SessionHandle,
    kept: &[String],
) -> Result<bool, StoreError> {
    let hops: &[u8] = if store.is_cluster() { b"1" } else { b"4" };
    let mut key = codec::handle_key(&store.inner.prefix, handle);
    for _ in 0..4 {
        let mut args = vec![Arg::Borrowed(px.as_bytes()), Arg::Borrowed(hops)];
        args.extend(kept.iter().map(|k| Arg::Borrowed(k.as_bytes())));
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

//! The default store: sessions in this process's memory, expired by `moka`.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::{Cache, CacheBuilder};
use moka::Expiry;

use self::index::PrincipalIndex;
use crate::id::SessionId;
use crate::principal::{Principal, PrincipalWrite, SessionHandle, Take};
use crate::record::{Fields, Meta, Record};
use crate::store::{
    apply_change, expectations_hold, Loaded, SessionStore, StoreError, Write, WriteKind, Written,
};

mod index;

/// Sessions held in memory: concurrent, self-expiring, optionally bounded.
///
/// Each entry lives for its session's remaining TTL after every write, and
/// is then removed by the cache itself, so abandoned sessions do not
/// accumulate. Every conditional write (expectations, rotation, tombstones)
/// runs under the entry's own lock: one atomic step, so several workers
/// sharing the store never lose each other's updates.
///
/// Bound it by count ([`MemoryStore::with_capacity`]) or, better for memory
/// planning, by bytes ([`MemoryStore::with_max_bytes`]): past the bound the
/// least recently used session is evicted.
///
/// Good for development, tests, and single-instance apps; sessions are lost
/// on restart and not shared between processes (use the Redis store for that).
///
/// It keeps the principal index (sessions per user) in memory next to the
/// sessions: a map from each principal to its sessions, updated under one
/// lock together with the session writes that change it, and cleaned when
/// the cache drops a session (expiry, eviction, delete). Sessions without
/// a principal never touch it.
///
/// ```
/// use sessionkit::MemoryStore;
/// let store = MemoryStore::new();
/// let bounded = MemoryStore::with_max_bytes(64 * 1024 * 1024);
/// assert_eq!(store.len(), 0);
/// # let _ = bounded;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<SessionId, Arc<Entry>, Hasher>,
    /// Entries are weighed by bytes: a changed size is inserted again.
    bytes_bounded: bool,
    index: Arc<PrincipalIndex>,
}

/// Keys are server-generated random ids (a lookup of an unknown id inserts
/// nothing), so a fast seeded hash is enough; moka's default SipHash costs
/// several times more per lookup.
type Hasher = foldhash::fast::RandomState;

/// What one entry costs beyond its id and packed fields (the cache's
/// bookkeeping, the `Arc`, the lock, the metadata), counted by the byte bound.
const ENTRY_OVERHEAD: usize = 160;

/// How many rotation tombstones a load, write or delete follows at most.
const MAX_HOPS: usize = 4;

/// One id's entry. The `Arc` stays the same for the entry's whole life:
/// every change happens under `state`'s lock and re-inserts the same `Arc`
/// (to refresh its TTL and weight), so two writers can never work on two
/// copies.
struct Entry {
    /// When the entry expires, in ms since [`epoch`].
    deadline_ms: AtomicU64,
    weight: AtomicU32,
    state: Mutex<Slot>,
}

/// The base of entry deadlines: the first use of any memory store.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` in ms since [`epoch`].
fn ms_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

enum Slot {
    /// A session: metadata and its fields packed into one buffer (`u16`
    /// name length, name, `u32` value length, value; repeated).
    Live { meta: Meta, packed: Box<[u8]> },
    /// Rotated away: forwards to `to` until `until` (ms since the epoch).
    Moved { to: SessionId, until: u64 },
    /// Deleted; the entry is being removed from the cache.
    Dead,
}

impl Entry {
    fn new(slot: Slot, ttl_ms: u64, weight: u32) -> Self {
        Self {
            deadline_ms: AtomicU64::new(ms_since_epoch(Instant::now()).saturating_add(ttl_ms)),
            weight: AtomicU32::new(weight),
            state: Mutex::new(slot),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every change of a slot is a single assignment after all fallible
        // work, so a panic cannot leave it half-written: poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time left at `at`.
    fn remaining(&self, at: Instant) -> Duration {
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        Duration::from_millis(deadline.saturating_sub(ms_since_epoch(at)))
    }

    /// Expire `ttl_ms` from now.
    fn set_ttl(&self, ttl_ms: u64) {
        let deadline = ms_since_epoch(Instant::now()).saturating_add(ttl_ms);
        self.deadline_ms.store(deadline, Ordering::Relaxed);
    }
}

fn weight(id: &SessionId, packed: usize) -> u32 {
    u32::try_from(id.as_str().len() + packed + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

fn pack(fields: &Fields) -> Box<[u8]> {
    let mut out = Vec::with_capacity(fields.encoded_len() + fields.len() * 6);
    for (name, value) in fields.iter() {
        // Field names are Rust identifiers or short renames; values are bounded
        // by maxSessionBytes, so both fit their length prefixes.
        out.put_u16(u16::try_from(name.len()).unwrap_or(u16::MAX));
        out.put_slice(&name[..name.len().min(usize::from(u16::MAX))]);
        out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        out.put_slice(value);
    }
    out.into_boxed_slice()
}

/// Unpacks [`pack`]'s buffer. A truncated buffer yields the complete fields
/// before the cut (never a panic).
pub(crate) fn unpack(packed: &[u8]) -> Fields {
    let all = Bytes::copy_from_slice(packed);
    let mut rest = packed;
    let mut fields = Fields::default();
    while rest.len() >= 2 {
        let start = all.len() - rest.len();
        let name_len = usize::from(rest.get_u16());
        if rest.len() < name_len + 4 {
            break;
        }
        let name = all.slice(start + 2..start + 2 + name_len);
        rest.advance(name_len);
        let value_len = rest.get_u32() as usize;
        if rest.len() < value_len {
            break;
        }
        let value_start = all.len() - rest.len();
        fields.insert(name, all.slice(value_start..value_start + value_len));
        rest.advance(value_len);
    }
    fields
}

/// Expiry policy: every entry expires at its own deadline, which writes move
/// (and which the cache reads again on every lookup, so a write needs no
/// re-insert to move it).
struct SessionTtl;

impl Expiry<SessionId, Arc<Entry>> for SessionTtl {
    fn expire_after_create(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        at: Instant,
    ) -> Option<Duration> {
        Some(entry.remaining(at))
    }

    fn expire_after_read(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        at: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(entry.remaining(at))
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.remaining(at))
    }
}

impl MemoryStore {
    /// An unbounded store; entries still expire with their sessions.
    #[must_use]
    pub fn new() -> Self {
        Self::build(Cache::builder(), false)
    }

    /// A store holding at most `max_sessions`; past that the least recently
    /// used session is evicted.
    #[must_use]
    pub fn with_capacity(max_sessions: u64) -> Self {
        Self::build(
            Cache::builder()
                .max_capacity(max_sessions)
                .eviction_policy(EvictionPolicy::lru()),
            false,
        )
    }

    /// A store holding at most about `max_bytes` of sessions; past that the
    /// least recently used session is evicted. An entry counts its id, its
    /// encoded fields and a fixed overhead for the cache's bookkeeping
    /// (160 bytes), so the bound tracks what the sessions really cost.
    ///
    /// ```
    /// let store = sessionkit::MemoryStore::with_max_bytes(256 * 1024 * 1024);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self::build(
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &SessionId, entry: &Arc<Entry>| entry.weight.load(Ordering::Relaxed))
                .eviction_policy(EvictionPolicy::lru()),
            true,
        )
    }

    /// The cache with the session TTL policy and the listener that keeps the
    /// principal index clean when the cache drops a session.
    fn build(
        builder: CacheBuilder<SessionId, Arc<Entry>, Cache<SessionId, Arc<Entry>>>,
        bytes_bounded: bool,
    ) -> Self {
        let index = Arc::new(PrincipalIndex::default());
        let listener = Arc::clone(&index);
        let cache = builder
            .expire_after(SessionTtl)
            .eviction_listener(move |id: Arc<SessionId>, _, cause| {
                // A re-inserted entry (`Replaced`) is not a removal.
                if cause != RemovalCause::Replaced {
                    listener.removed(&id);
                }
            })
            .build_with_hasher(Hasher::default());
        Self {
            cache,
            bytes_bounded,
            index,
        }
    }

    /// The number of entries held, rotation tombstones included
    /// (approximate until [`MemoryStore::sweep`] runs).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether the store holds no session (see [`MemoryStore::len`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held as the byte bound counts them (approximate until
    /// [`MemoryStore::sweep`] runs; 0 for a store without a byte bound).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Removes expired entries and applies pending evictions now, instead of
    /// as a side effect of later calls.
    pub fn sweep(&self) {
        self.cache.run_pending_tasks();
        drop(self.index.lock());
    }

    /// How many sessions the principal index holds (for tests and
    /// monitoring; approximate until [`MemoryStore::sweep`] runs).
    #[must_use]
    pub fn indexed_sessions(&self) -> usize {
        self.index.lock().len()
    }

    fn load_now(&self, id: &SessionId, now: u64) -> Loaded {
        let Some(entry) = self.cache.get(id) else {
            return Loaded::Absent;
        };
        let slot = entry.lock();
        match &*slot {
            Slot::Live { meta, packed } => Loaded::Session(Record {
                meta: *meta,
                fields: unpack(packed),
            }),
            Slot::Moved { to, until } if *until > now => Loaded::Moved(to.clone()),
            Slot::Moved { .. } | Slot::Dead => Loaded::Absent,
        }
    }

    /// Moves `entry`'s deadline and makes the cache see it: a lookup
    /// re-times it; a changed weight (byte-bounded stores) needs the same
    /// `Arc` inserted again.
    fn refresh(&self, id: &SessionId, entry: &Arc<Entry>, ttl_ms: u64, packed_len: usize) {
        entry.set_ttl(ttl_ms);
        let new = weight(id, packed_len);
        let old = entry.weight.swap(new, Ordering::Relaxed);
        if self.bytes_bounded && old != new {
            self.cache.insert(id.clone(), Arc::clone(entry));
        } else {
            self.cache.get(id);
        }
    }

    /// A write, with the principal index updated under its lock together
    /// with the session when the write changes what the index must hold.
    fn write_now(&self, write: &Write) -> Written {
        let rotating = matches!(write.kind, WriteKind::Rotate { .. });
        let change = match &write.principal {
            None => return self.write_entry(write),
            Some(PrincipalWrite::Keep(_)) if !rotating => return self.write_entry(write),
            Some(change) => change,
        };
        let mut index = self.index.lock_for_insert();
        if let PrincipalWrite::Keep(principal) = change {
            if !index.is_member(principal, &SessionHandle::of(&write.id)) {
                // Revoked: the entry was taken.
                return Written::Gone;
            }
        }
        let written = self.write_entry(write);
        if written != Written::Done {
            return written;
        }
        let target = match &write.kind {
            WriteKind::Rotate { to, .. } => to,
            WriteKind::Create | WriteKind::Update => &write.id,
        };
        if rotating {
            // The old id is a tombstone now, or gone: no longer listed, but
            // a revocation holding its handle can still follow it (the
            // cache's listener forgets it when the tombstone goes).
            index.unlist_id(&write.id);
        }
        match change.principal() {
            Some(principal) => {
                index.insert(principal.clone(), target.clone());
                self.prune(&mut index, principal, write.now);
            }
            None => index.forget_id(target),
        }
        written
    }

    /// Drops `principal`'s entries whose session is gone, expired, or only a
    /// rotation tombstone now.
    fn prune(&self, index: &mut index::State, principal: &Principal, now: u64) {
        let dead: Vec<SessionHandle> = index
            .members(principal)
            .filter(|(_, id)| !matches!(self.load_now(id, now), Loaded::Session(r) if !r.meta.is_expired(now)))
            .map(|(h, _)| h.clone())
            .collect();
        for handle in dead {
            index.remove_member(principal, &handle);
        }
    }

    fn list_now(&self, principal: &Principal, now: u64) -> Vec<(SessionHandle, Record)> {
        let mut index = self.index.lock();
        self.prune(&mut index, principal, now);
        index
            .members(principal)
            .filter_map(|(handle, id)| match self.load_now(id, now) {
                Loaded::Session(record) => Some((handle.clone(), record)),
                Loaded::Absent | Loaded::Moved(_) => None,
            })
            .collect()
    }

    /// Deletes the session `handle` names (following tombstones) if it
    /// belongs to `principal`.
    fn delete_owned(
        &self,
        index: &index::State,
        principal: &Principal,
        handle: &SessionHandle,
    ) -> bool {
        let Some(mut id) = index.owned(principal, handle).cloned() else {
            return false;
        };
        for _ in 0..MAX_HOPS {
            let Some(entry) = self.cache.get(&id) else {
                return false;
            };
            let mut slot = entry.lock();
            match &*slot {
                Slot::Moved { to, .. } => {
                    let to = to.clone();
                    drop(slot);
                    if index.owned(principal, &SessionHandle::of(&to)).is_none() {
                        return false;
                    }
                    id = to;
                }
                Slot::Live { .. } => {
                    *slot = Slot::Dead;
                    self.cache.invalidate(&id);
                    return true;
                }
                Slot::Dead => return false,
            }
        }
        false
    }

    fn write_entry(&self, write: &Write) -> Written {
        if write.kind == WriteKind::Create {
            let mut fields = Fields::default();
            apply_change(&mut fields, write);
            let packed = pack(&fields);
            let w = weight(&write.id, packed.len());
            let slot = Slot::Live {
                meta: write.meta,
                packed,
            };
            self.cache.insert(
                write.id.clone(),
                Arc::new(Entry::new(slot, write.ttl_ms, w)),
            );
            return Written::Done;
        }
        let Some(entry) = self.cache.get(&write.id) else {
            return Written::Gone;
        };
        let mut slot = entry.lock();
        let (meta, packed) = match &mut *slot {
            Slot::Live { meta, packed } => (meta, packed),
            Slot::Moved { to, until } if *until > write.now => return Written::Moved(to.clone()),
            Slot::Moved { .. } | Slot::Dead => return Written::Gone,
        };
        let mut fields = unpack(packed);
        if !expectations_hold(&fields, &write.expect) {
            return Written::Conflict(Record {
                meta: *meta,
                fields,
            });
        }
        apply_change(&mut fields, write);
        if let WriteKind::Rotate { to, grace_ms, .. } = &write.kind {
            let packed = pack(&fields);
            let w = weight(to, packed.len());
            let moved = Slot::Live {
                meta: write.meta,
                packed,
            };
            self.cache
                .insert(to.clone(), Arc::new(Entry::new(moved, write.ttl_ms, w)));
            if *grace_ms > 0 {
                *slot = Slot::Moved {
                    to: to.clone(),
                    until: write.now.saturating_add(*grace_ms),
                };
                self.refresh(&write.id, &entry, *grace_ms, 0);
            } else {
                *slot = Slot::Dead;
                self.cache.invalidate(&write.id);
            }
            return Written::Done;
        }
        if write.meta_changed {
            *meta = write.meta;
        } else {
            meta.last_access = write.now;
        }
        let ttl = meta.ttl_ms(write.now);
        *packed = pack(&fields);
        let len = packed.len();
        self.refresh(&write.id, &entry, ttl, len);
        Written::Done
    }

    fn delete_now(&self, id: &SessionId) {
        let mut next = Some(id.clone());
        for _ in 0..MAX_HOPS {
            let Some(current) = next.take() else {
                return;
            };
            let Some(entry) = self.cache.get(&current) else {
                return;
            };
            let mut slot = entry.lock();
            if let Slot::Moved { to, .. } = &*slot {
                next = Some(to.clone());
            }
            *slot = Slot::Dead;
            self.cache.invalidate(&current);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        Ok(self.load_now(id, now))
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        Ok(self.write_now(write))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.delete_now(id);
        Ok(())
    }

    fn label(&self) -> &'static str {
        "memory"
    }

    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        Ok(self.list_now(principal, now))
    }

    async fn take_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
    ) -> Result<Vec<SessionHandle>, StoreError> {
        Ok(self.index.lock().take(principal, take))
    }

    async fn delete_principal_sessions(
        &self,
        principal: &Principal,
        sessions: &[SessionHandle],
    ) -> Result<usize, StoreError> {
        let index = self.index.lock();
        Ok(sessions
            .iter()
            .filter(|handle| self.delete_owned(&index, principal, handle))
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:0>20}")).unwrap()
    }

    fn create(id: &SessionId, ttl: u64, value: &'static [u8]) -> Write {
        Write {
            id: id.clone(),
            kind: WriteKind::Create,
            now: 0,
            meta: Meta::new(0, ttl, None),
            meta_changed: true,
            ttl_ms: ttl,
            set: vec![("x", Bytes::from_static(value))],
            remove: vec![],
            expect: vec![],
            principal: None,
        }
    }

    #[tokio::test]
    async fn entries_expire_by_themselves() {
        let store = MemoryStore::new();
        for i in 0..200 {
            store
                .write(&create(&id(&i.to_string()), 50, b"1"))
                .await
                .unwrap();
        }
        store.sweep();
        assert_eq!(store.len(), 200);
        // moka's timer wheel processes per-entry expiry in ~1 s buckets, so
        // poll (bounded) rather than assume an exact instant.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.sweep();
            if store.is_empty() {
                break;
            }
        }
        assert_eq!(store.len(), 0, "expired sessions must not accumulate");
    }

    #[tokio::test]
    async fn capacity_bounds_the_store() {
        let store = MemoryStore::with_capacity(10);
        for i in 0..100 {
            store
                .write(&create(&id(&i.to_string()), 60_000, b"1"))
                .await
                .unwrap();
        }
        store.sweep();
        assert!(store.len() <= 10, "len {}", store.len());
        assert!(
            matches!(store.load(&id("99"), 1).await.unwrap(), Loaded::Session(_)),
            "newest kept"
        );
    }

    #[tokio::test]
    async fn bytes_bound_the_store() {
        let bound = 64 * 1024;
        let store = MemoryStore::with_max_bytes(bound);
        static BIG: [u8; 1000] = [7; 1000];
        for i in 0..1_000 {
            store
                .write(&create(&id(&i.to_string()), 60_000, &BIG))
                .await
                .unwrap();
        }
        store.sweep();
        assert!(
            store.weighted_size() <= bound,
            "{} bytes held over a bound of {bound}",
            store.weighted_size()
        );
        assert!(
            store.len() >= 40,
            "the bound is used: {} entries",
            store.len()
        );
        assert!(matches!(
            store.load(&id("999"), 1).await.unwrap(),
            Loaded::Session(_)
        ));
    }

    #[test]
    fn pack_round_trips_and_truncation_is_safe() {
        let fields: Fields = [
            (Bytes::from_static(b"a"), Bytes::from_static(b"")),
            (Bytes::from_static(b"bb"), Bytes::from_static(b"xyz")),
        ]
        .into_iter()
        .collect();
        let packed = pack(&fields);
        assert_eq!(unpack(&packed), fields);
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).len() <= 2);
        }
    }
}

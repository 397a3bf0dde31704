//! The default store: sessions in this process's memory, in a sharded map
//! that expires and bounds them itself.

use std::fmt;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use self::body::Body;
use self::index::PrincipalIndex;
use self::key::Key;
use self::policy::{Bound, Class};
use self::table::Table;
use crate::id::SessionId;
use crate::principal::{Principal, PrincipalWrite, SessionHandle, Take};
use crate::record::{Fields, Meta, Record};
use crate::store::{
    apply_change, expectations_hold, DynPrincipalIndex, Loaded, SessionStore, StoreError, Write,
    WriteKind, Written,
};

mod body;
mod index;
mod key;
mod policy;
mod table;

/// Sessions held in memory: concurrent, self-expiring, optionally bounded.
///
/// Each entry lives for its session's remaining TTL after every write, then
/// disappears: a lookup no longer sees it, and the next write to its shard
/// at least a second later (or [`MemoryStore::sweep`]) frees it, so
/// abandoned sessions do not accumulate. Every conditional write
/// (expectations, rotation, tombstones) runs under the lock of the shard
/// holding the id (a rotation: of both ids' shards): one atomic step, so
/// several workers sharing the store never lose each other's updates.
///
/// Bound it by count ([`MemoryStore::with_capacity`]) or, better for memory
/// planning, by bytes ([`MemoryStore::with_max_bytes`]). Past the bound,
/// sessions without a principal (anonymous) are evicted before any session
/// with one (signed in), so a flood of cookieless requests cannot sign
/// users out; within each class the sessions closest to expiry go first
/// (with one idle timeout for all, the least recently written), a batch at
/// a time.
///
/// Good for development, tests, and single-instance apps; sessions are lost
/// on restart and not shared between processes (use the Redis store for that).
///
/// It keeps the principal index (sessions per user) in memory next to the
/// sessions: a map from each principal to its sessions, updated under one
/// lock together with the session writes that change it, and cleaned when
/// the store drops a session (expiry, eviction, delete). Sessions without
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
    table: Arc<Table>,
    index: Arc<PrincipalIndex>,
    ticks: Ticks,
}

/// The eviction class of what `write` stores: signed-in when the session
/// has a principal after it (see `policy`: anonymous entries are evicted
/// first).
fn class_of(write: &Write) -> Class {
    match write.principal {
        Some(PrincipalWrite::Join(_) | PrincipalWrite::Keep(_)) => Class::SignedIn,
        Some(PrincipalWrite::Leave) | None => Class::Anonymous,
    }
}

/// How many rotation tombstones a load, write or delete follows at most.
const MAX_HOPS: usize = 4;

/// The store's own time for entry deadlines: monotonic ms since the first
/// use of any memory store (sessions' timestamps use the manager's clock;
/// entry deadlines only need to be steady).
#[derive(Clone)]
enum Ticks {
    System,
    /// Moved by hand, for tests.
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Ticks {
    fn now(&self) -> u64 {
        match self {
            Ticks::System => {
                static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                let epoch = *EPOCH.get_or_init(Instant::now);
                u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
            #[cfg(test)]
            Ticks::Manual(now) => now.load(Ordering::SeqCst),
        }
    }
}

impl MemoryStore {
    /// An unbounded store; entries still expire with their sessions.
    #[must_use]
    pub fn new() -> Self {
        Self::build(Bound::Unbounded)
    }

    /// A store holding at most `max_sessions` entries (rotation tombstones
    /// included); past that anonymous sessions are evicted first, then the
    /// signed-in sessions closest to expiry (see the type docs).
    ///
    /// ```
    /// let store = sessionkit::MemoryStore::with_capacity(100_000);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_capacity(max_sessions: u64) -> Self {
        Self::build(Bound::Entries(max_sessions))
    }

    /// A store holding at most about `max_bytes` of sessions; past that
    /// anonymous sessions are evicted first, then the signed-in sessions
    /// closest to expiry (see the type docs). An entry counts its packed
    /// metadata and fields, its id when the id is not in one of the built-in
    /// generators' forms (those are held as 16 bytes), and 100 bytes for its
    /// slot in the table, so the bound tracks what the sessions really cost.
    ///
    /// ```
    /// let store = sessionkit::MemoryStore::with_max_bytes(256 * 1024 * 1024);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self::build(Bound::Bytes(max_bytes))
    }

    fn build(bound: Bound) -> Self {
        let index = Arc::new(PrincipalIndex::default());
        Self {
            table: Arc::new(Table::new(bound, &index)),
            index,
            ticks: Ticks::System,
        }
    }

    /// The number of entries held, rotation tombstones included (expired
    /// entries count until swept; see [`MemoryStore::sweep`]).
    ///
    /// ```
    /// assert!(sessionkit::MemoryStore::new().is_empty());
    /// ```
    #[must_use]
    pub fn len(&self) -> u64 {
        self.table.len()
    }

    /// Whether the store holds no session (see [`MemoryStore::len`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held as the byte bound counts them (expired entries count
    /// until swept; 0 for a store without a byte bound).
    ///
    /// ```
    /// let store = sessionkit::MemoryStore::with_max_bytes(1 << 20);
    /// assert_eq!(store.weighted_size(), 0);
    /// ```
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.table.bytes()
    }

    /// Removes expired entries now, instead of with later writes, and
    /// applies the principal index's pending removals.
    ///
    /// ```
    /// let store = sessionkit::MemoryStore::new();
    /// store.sweep();
    /// assert!(store.is_empty());
    /// ```
    pub fn sweep(&self) {
        self.table.sweep(self.ticks.now());
        drop(self.index.lock());
    }

    /// How many sessions the principal index holds (for tests and
    /// monitoring; it may count sessions expired since the last
    /// [`MemoryStore::sweep`]).
    ///
    /// ```
    /// assert_eq!(sessionkit::MemoryStore::new().indexed_sessions(), 0);
    /// ```
    #[must_use]
    pub fn indexed_sessions(&self) -> usize {
        self.index.lock().len()
    }

    fn load_now(&self, id: &SessionId, now: u64) -> Loaded {
        let key = Key::of(id);
        let shard = self.table.lock(&key);
        let Some(stored) = shard.get(&key, self.ticks.now()) else {
            return Loaded::Absent;
        };
        match body::decode(stored) {
            Body::Live { meta, fields } => Loaded::Session(Record {
                meta,
                fields: body::unpack(fields),
            }),
            Body::Moved { to, until } if until > now => Loaded::Moved(to),
            Body::Moved { .. } | Body::Malformed => Loaded::Absent,
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
            // table tells the index when the tombstone goes).
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

    /// Revokes under the index lock: the entries leave the index and their
    /// sessions are deleted in one step for every other index operation
    /// (rotations of principal sessions need the lock too), so there is no
    /// partial state a failure could leave behind. Rotated-away ids are not
    /// members (a rotation unlists them), so `AllExcept` never reaches the
    /// kept session through one of its old ids; and the ids the kept one
    /// was rotated to since the caller loaded it are kept too.
    fn revoke_now(&self, principal: &Principal, take: Take<'_>, now: u64) -> usize {
        let mut index = self.index.lock();
        let taken = match take {
            Take::AllExcept(keep) => {
                let kept = self.forwards_of(&index, keep, now);
                index.take_all_except(principal, &kept)
            }
            Take::These(these) => {
                let mut taken = index.take(principal, Take::These(these));
                // Old ids of rotated sessions are no longer members but still
                // known while their tombstones forward: revoke through them,
                // as the other stores do.
                for handle in these {
                    if !taken.contains(handle) && index.owned(principal, handle).is_some() {
                        taken.push(handle.clone());
                    }
                }
                taken
            }
            Take::All => index.take(principal, Take::All),
        };
        taken
            .iter()
            .filter(|handle| self.delete_owned(&index, principal, handle))
            .count()
    }

    /// `handle` and the handles of the ids it was rotated to, following its
    /// tombstones while they forward (at most [`MAX_HOPS`]).
    fn forwards_of(
        &self,
        index: &index::State,
        handle: &SessionHandle,
        now: u64,
    ) -> Vec<SessionHandle> {
        let mut kept = vec![handle.clone()];
        let Some(mut id) = index.id_of(handle).cloned() else {
            return kept;
        };
        for _ in 0..MAX_HOPS {
            let Loaded::Moved(to) = self.load_now(&id, now) else {
                break;
            };
            kept.push(SessionHandle::of(&to));
            id = to;
        }
        kept
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
        let ticks = self.ticks.now();
        for _ in 0..MAX_HOPS {
            let key = Key::of(&id);
            let mut shard = self.table.lock(&key);
            let next = match shard.get(&key, ticks).map(body::decode) {
                None | Some(Body::Malformed) => return false,
                Some(Body::Live { .. }) => None,
                Some(Body::Moved { to, .. }) => Some(to),
            };
            let Some(to) = next else {
                shard.remove(&key);
                return true;
            };
            drop(shard);
            if index.owned(principal, &SessionHandle::of(&to)).is_none() {
                return false;
            }
            id = to;
        }
        false
    }

    fn write_entry(&self, write: &Write) -> Written {
        let ticks = self.ticks.now();
        let key = Key::of(&write.id);
        match &write.kind {
            WriteKind::Create => {
                let mut fields = Fields::default();
                apply_change(&mut fields, write);
                let stored = body::live(&write.meta, &fields);
                let class = class_of(write);
                self.table
                    .lock(&key)
                    .put(key, stored, ticks, write.ttl_ms, class);
                Written::Done
            }
            WriteKind::Update => self.update(write, &key, ticks),
            WriteKind::Rotate { to, grace_ms, .. } => {
                self.rotate(write, &key, to, *grace_ms, ticks)
            }
        }
    }

    /// A live session's stored fields with `write`'s change applied, or why
    /// `write` does not apply to what `stored` holds.
    fn changed_fields(stored: Option<&[u8]>, write: &Write) -> Result<(Meta, Fields), Written> {
        let (meta, packed) = match stored.map(body::decode) {
            Some(Body::Live { meta, fields }) => (meta, fields),
            Some(Body::Moved { to, until }) if until > write.now => return Err(Written::Moved(to)),
            Some(Body::Moved { .. } | Body::Malformed) | None => return Err(Written::Gone),
        };
        let mut fields = body::unpack(packed);
        if !expectations_hold(&fields, &write.expect) {
            return Err(Written::Conflict(Record { meta, fields }));
        }
        apply_change(&mut fields, write);
        Ok((meta, fields))
    }

    fn update(&self, write: &Write, key: &Key, ticks: u64) -> Written {
        let mut shard = self.table.lock(key);
        let touch_only = write.set.is_empty() && write.remove.is_empty() && write.expect.is_empty();
        if touch_only {
            // Only the metadata changes: rewritten in place.
            let found = match shard.get(key, ticks).map(body::decode) {
                Some(Body::Live { meta, .. }) => Ok(meta),
                Some(Body::Moved { to, until }) if until > write.now => Err(Written::Moved(to)),
                Some(Body::Moved { .. } | Body::Malformed) | None => Err(Written::Gone),
            };
            return match found {
                Ok(meta) => {
                    let meta = next_meta(meta, write);
                    let ttl = meta.ttl_ms(write.now);
                    if shard.touch(key, ticks, ttl, |stored| body::set_meta(stored, &meta)) {
                        Written::Done
                    } else {
                        Written::Gone
                    }
                }
                Err(written) => written,
            };
        }
        let (stored, fields) = match Self::changed_fields(shard.get(key, ticks), write) {
            Ok(changed) => changed,
            Err(written) => return written,
        };
        let meta = next_meta(stored, write);
        let ttl = meta.ttl_ms(write.now);
        let stored = body::live(&meta, &fields);
        shard.put(key.clone(), stored, ticks, ttl, class_of(write));
        Written::Done
    }

    fn rotate(
        &self,
        write: &Write,
        key: &Key,
        to: &SessionId,
        grace_ms: u64,
        ticks: u64,
    ) -> Written {
        let to_key = Key::of(to);
        let (mut shard, mut other) = self.table.lock_pair(key, &to_key);
        let fields = match Self::changed_fields(shard.get(key, ticks), write) {
            Ok((_, fields)) => fields,
            Err(written) => return written,
        };
        let moved = body::live(&write.meta, &fields);
        let class = class_of(write);
        match other.as_deref_mut() {
            Some(target) => target.put(to_key, moved, ticks, write.ttl_ms, class),
            None => shard.put(to_key, moved, ticks, write.ttl_ms, class),
        }
        if grace_ms > 0 {
            let until = write.now.saturating_add(grace_ms);
            let tombstone = body::moved(to, until);
            shard.put(key.clone(), tombstone, ticks, grace_ms, class);
        } else {
            shard.remove(key);
        }
        Written::Done
    }

    fn delete_now(&self, id: &SessionId) {
        let ticks = self.ticks.now();
        let mut next = Some(Key::of(id));
        for _ in 0..MAX_HOPS {
            let Some(key) = next.take() else {
                return;
            };
            let mut shard = self.table.lock(&key);
            // A tombstone is followed while it is held (an expired one no
            // longer links its id to the new one).
            if let Some(Body::Moved { to, .. }) = shard.get(&key, ticks).map(body::decode) {
                next = Some(Key::of(&to));
            }
            shard.remove(&key);
        }
    }
}

/// The metadata `write` leaves on a session stored with `meta`: all of
/// `write.meta` when the write changed it, else only the new last access
/// (so a concurrent change of the idle timeout is not undone).
fn next_meta(meta: Meta, write: &Write) -> Meta {
    if write.meta_changed {
        write.meta
    } else {
        Meta {
            last_access: write.now,
            ..meta
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
            .field("entries", &self.len())
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

    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        Some(self)
    }
}

impl crate::store::PrincipalIndex for MemoryStore {
    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        Ok(self.list_now(principal, now))
    }

    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        Ok(self.revoke_now(principal, take, now))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

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

    /// A store whose entry deadlines follow the returned ticks.
    fn manual() -> (MemoryStore, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let store = MemoryStore {
            ticks: Ticks::Manual(Arc::clone(&ticks)),
            ..MemoryStore::new()
        };
        (store, ticks)
    }

    #[tokio::test]
    async fn entries_expire_by_themselves() {
        let (store, ticks) = manual();
        for i in 0..200 {
            store
                .write(&create(&id(&i.to_string()), 50, b"1"))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 200);
        ticks.store(49, Ordering::SeqCst);
        assert!(matches!(
            store.load(&id("7"), 0).await.unwrap(),
            Loaded::Session(_)
        ));
        ticks.store(50, Ordering::SeqCst);
        assert_eq!(store.load(&id("7"), 0).await.unwrap(), Loaded::Absent);
        store.sweep();
        assert_eq!(store.len(), 0, "expired sessions must not accumulate");
    }

    #[tokio::test]
    async fn touches_move_the_deadline_in_place() {
        let (store, ticks) = manual();
        let id = id("touched");
        store.write(&create(&id, 100, b"1")).await.unwrap();
        ticks.store(90, Ordering::SeqCst);
        let touch = Write {
            kind: WriteKind::Update,
            now: 90,
            meta_changed: false,
            set: vec![],
            ..create(&id, 100, b"1")
        };
        assert_eq!(store.write(&touch).await.unwrap(), Written::Done);
        ticks.store(150, Ordering::SeqCst);
        let Loaded::Session(record) = store.load(&id, 90).await.unwrap() else {
            panic!("touched, so still held");
        };
        assert_eq!(record.meta.last_access, 90);
        assert_eq!(record.fields.get("x").map(|v| &v[..]), Some(&b"1"[..]));
        ticks.store(190, Ordering::SeqCst);
        assert_eq!(store.write(&touch).await.unwrap(), Written::Gone);
    }

    /// Rotations lock two shards; two threads rotating across the shards at
    /// once (so in both directions between some pairs) must both finish
    /// (locks are taken in shard order), each session ending in one place.
    #[test]
    fn crossing_rotations_do_not_deadlock() {
        let store = MemoryStore::new();
        let rotate = |from: &SessionId, to: &SessionId| Write {
            kind: WriteKind::Rotate {
                to: to.clone(),
                grace_ms: 0,
                full: vec![],
                loaded: vec![],
            },
            set: vec![],
            ..create(from, 60_000, b"1")
        };
        let chains: Vec<Vec<SessionId>> = (0..2)
            .map(|t| (0..200).map(|i| id(&format!("c{t}x{i}"))).collect())
            .collect();
        for chain in &chains {
            assert_eq!(
                store.write_now(&create(&chain[0], 60_000, b"1")),
                Written::Done
            );
        }
        std::thread::scope(|scope| {
            for chain in &chains {
                let store = store.clone();
                scope.spawn(move || {
                    for pair in chain.windows(2) {
                        assert_eq!(store.write_now(&rotate(&pair[0], &pair[1])), Written::Done);
                    }
                });
            }
        });
        assert_eq!(store.len(), 2);
        for chain in &chains {
            assert!(matches!(store.load_now(&chain[199], 0), Loaded::Session(_)));
        }
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
}

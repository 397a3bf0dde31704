//! The default store: sessions in this process's memory, expired by `moka`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;

use crate::id::SessionId;
use crate::record::{Fields, Meta, Record, Update};
use crate::store::{SessionStore, StoreFuture};

/// Sessions held in memory: concurrent, self-expiring, optionally bounded.
///
/// Each entry lives for its session's remaining TTL after every load or save
/// (sliding with the idle timeout), and is then removed by the cache itself,
/// so abandoned sessions do not accumulate. With a capacity, the least
/// recently used session is evicted when the bound is reached.
///
/// Good for development, tests, and single-instance apps; sessions are lost
/// on restart and not shared between processes (use the Redis store for that).
///
/// ```
/// use sessionkit::MemoryStore;
/// let store = MemoryStore::new();
/// let bounded = MemoryStore::with_capacity(100_000);
/// assert_eq!(store.len(), 0);
/// # let _ = bounded;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<SessionId, Arc<Entry>, Hasher>,
}

/// Keys are server-generated random ids (a lookup of an unknown id inserts
/// nothing), so a fast seeded hash is enough; moka's default SipHash costs
/// several times more per lookup.
type Hasher = foldhash::fast::RandomState;

/// One session: its metadata and its fields packed into a single buffer
/// (`u16` name length, name, `u32` value length, value; repeated).
struct Entry {
    ttl_ms: AtomicU64,
    state: Mutex<Stored>,
}

struct Stored {
    meta: Meta,
    packed: Box<[u8]>,
}

impl Entry {
    fn new(update: &Update, fields: &Fields) -> Self {
        Self {
            ttl_ms: AtomicU64::new(update.ttl_ms()),
            state: Mutex::new(Stored {
                meta: update.meta,
                packed: pack(fields),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        // A panic while holding this lock cannot leave `Stored` half-written
        // (every write is a single assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }
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

fn unpack(packed: &[u8]) -> Fields {
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

/// Expiry policy: every create, read and update gives the entry its session's
/// current TTL, so an entry outlives its last access by at most the idle timeout.
struct SessionTtl;

impl Expiry<SessionId, Arc<Entry>> for SessionTtl {
    fn expire_after_create(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        _: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl())
    }

    fn expire_after_read(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl())
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl())
    }
}

impl MemoryStore {
    /// An unbounded store; entries still expire with their sessions.
    #[must_use]
    pub fn new() -> Self {
        Self {
            cache: Cache::builder()
                .expire_after(SessionTtl)
                .build_with_hasher(Hasher::default()),
        }
    }

    /// A store holding at most `max_sessions`; past that the least recently
    /// used session is evicted.
    #[must_use]
    pub fn with_capacity(max_sessions: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_sessions)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(SessionTtl)
                .build_with_hasher(Hasher::default()),
        }
    }

    /// The number of sessions held (approximate until [`MemoryStore::sweep`] runs).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether the store holds no session (see [`MemoryStore::len`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes expired entries and applies pending evictions now, instead of
    /// as a side effect of later calls.
    pub fn sweep(&self) {
        self.cache.run_pending_tasks();
    }

    fn load_now(&self, id: &SessionId, now: u64) -> Option<Record> {
        let entry = self.cache.get(id)?;
        let mut stored = entry.lock();
        let before = stored.meta;
        if !before.is_expired(now) {
            stored.meta.last_access = now;
            entry
                .ttl_ms
                .store(stored.meta.ttl_ms(now), Ordering::Relaxed);
        }
        Some(Record {
            meta: before,
            fields: unpack(&stored.packed),
        })
    }

    fn save_now(&self, id: &SessionId, update: &Update) {
        if update.replace {
            let mut fields = Fields::default();
            fields.apply(update);
            self.cache
                .insert(id.clone(), Arc::new(Entry::new(update, &fields)));
            return;
        }
        // A partial update of a session that is gone (destroyed by another
        // request, or expired) writes nothing: it must not come back as a fragment.
        if let Some(entry) = self.cache.get(id) {
            let mut stored = entry.lock();
            let mut fields = unpack(&stored.packed);
            fields.apply(update);
            stored.packed = pack(&fields);
            stored.meta = update.meta;
            entry.ttl_ms.store(update.ttl_ms(), Ordering::Relaxed);
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
            .field("sessions", &self.cache.entry_count())
            .finish()
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(&'a self, id: &'a SessionId, now: u64) -> StoreFuture<'a, Option<Record>> {
        let record = self.load_now(id, now);
        Box::pin(async move { Ok(record) })
    }

    fn save<'a>(&'a self, id: &'a SessionId, update: &'a Update) -> StoreFuture<'a, ()> {
        self.save_now(id, update);
        Box::pin(async { Ok(()) })
    }

    fn rotate<'a>(
        &'a self,
        old: &'a SessionId,
        new: &'a SessionId,
        update: &'a Update,
    ) -> StoreFuture<'a, ()> {
        let mut fields = Fields::default();
        fields.apply(update);
        self.cache
            .insert(new.clone(), Arc::new(Entry::new(update, &fields)));
        self.cache.invalidate(old);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        self.cache.invalidate(id);
        Box::pin(async { Ok(()) })
    }

    fn touch<'a>(&'a self, id: &'a SessionId, meta: &'a Meta) -> StoreFuture<'a, ()> {
        if let Some(entry) = self.cache.get(id) {
            entry.lock().meta = *meta;
            entry
                .ttl_ms
                .store(meta.ttl_ms(meta.last_access), Ordering::Relaxed);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:0>20}")).unwrap()
    }

    fn update(now: u64, ttl: u64, set: &[(&'static str, &'static [u8])], replace: bool) -> Update {
        Update {
            meta: Meta::new(now, ttl, None),
            set: set
                .iter()
                .map(|(n, v)| (*n, Bytes::from_static(v)))
                .collect(),
            remove: vec![],
            replace,
        }
    }

    #[tokio::test]
    async fn save_load_partial_update_rotate_delete() {
        let store = MemoryStore::new();
        let a = id("a");
        store
            .save(&a, &update(0, 60_000, &[("x", b"1"), ("y", b"2")], true))
            .await
            .unwrap();
        let mut partial = update(5, 60_000, &[("y", b"3")], false);
        partial.remove.push("x");
        store.save(&a, &partial).await.unwrap();
        let rec = store.load(&a, 10).await.unwrap().unwrap();
        assert!(rec.fields.get("x").is_none());
        assert_eq!(rec.fields.get("y").unwrap().as_ref(), b"3");
        assert_eq!(
            rec.meta.last_access, 5,
            "load returns the record before its touch"
        );
        assert_eq!(
            store.load(&a, 11).await.unwrap().unwrap().meta.last_access,
            10
        );

        let b = id("b");
        store
            .rotate(&a, &b, &update(20, 60_000, &[("y", b"3")], true))
            .await
            .unwrap();
        assert!(store.load(&a, 21).await.unwrap().is_none());
        assert!(store.load(&b, 21).await.unwrap().is_some());
        store.delete(&b).await.unwrap();
        assert!(store.load(&b, 22).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn entries_expire_by_themselves() {
        let store = MemoryStore::new();
        for i in 0..200 {
            store
                .save(&id(&i.to_string()), &update(0, 50, &[("x", b"1")], true))
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
                .save(
                    &id(&i.to_string()),
                    &update(0, 60_000, &[("x", b"1")], true),
                )
                .await
                .unwrap();
        }
        store.sweep();
        assert!(store.len() <= 10, "len {}", store.len());
        assert!(
            store.load(&id("99"), 1).await.unwrap().is_some(),
            "newest kept"
        );
    }

    #[test]
    fn pack_round_trips() {
        let fields: Fields = [
            (Bytes::from_static(b"a"), Bytes::from_static(b"")),
            (Bytes::from_static(b"bb"), Bytes::from_static(b"xyz")),
        ]
        .into_iter()
        .collect();
        assert_eq!(unpack(&pack(&fields)), fields);
    }
}

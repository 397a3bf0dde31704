//! The memory store's table: shards of a hash map from [`Key`] to one packed
//! buffer and its [`Stamp`], each shard behind its own lock, with lazy
//! expiry, a periodic sweep, and eviction past a bound.
//!
//! Time is passed in (`now`: monotonic ms since the store's epoch), so every
//! expiry and eviction here is tested without a clock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::index::PrincipalIndex;
use super::key::Key;
use super::policy::{eviction_threshold, shard_count, share, to_free, weight, Bound, Class, Stamp};

/// Keys are server-generated random ids (a lookup of an unknown id inserts
/// nothing), so a fast seeded hash is enough.
type Hasher = foldhash::fast::RandomState;

/// How often a shard that is written drops its expired entries (ms).
pub(crate) const SWEEP_INTERVAL_MS: u64 = 1_000;

/// The shards, and the hasher that picks one for a key (seeded apart from
/// the maps' own, so the keys of one shard still spread over its table).
pub(crate) struct Table {
    shards: Box<[Mutex<Shard>]>,
    pick: Hasher,
    bound: Bound,
}

/// One shard: its map, what its entries weigh, and its share of the bound.
pub(crate) struct Shard {
    map: HashMap<Key, Slot, Hasher>,
    /// The sum of the entries' [`weight`]s.
    bytes: u64,
    /// This shard's part of the store's bound (same unit as the bound).
    limit: Bound,
    /// Numbers the writes, to order entries of equal deadline.
    seq: u32,
    /// When the next write sweeps expired entries (monotonic ms).
    next_sweep: u64,
    /// Told about every entry that leaves (not about one replaced).
    listener: Arc<PrincipalIndex>,
}

/// An entry: its eviction class, when it expires, and what it holds.
struct Slot {
    stamp: Stamp,
    body: Box<[u8]>,
}

impl Table {
    /// A table for `bound`, telling `listener` about removed entries.
    pub(crate) fn new(bound: Bound, listener: &Arc<PrincipalIndex>) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        let count = shard_count(bound, parallelism);
        let shards = (0..count)
            .map(|i| {
                let limit = match bound {
                    Bound::Unbounded => Bound::Unbounded,
                    Bound::Entries(n) => Bound::Entries(share(n, count, i)),
                    Bound::Bytes(b) => Bound::Bytes(share(b, count, i)),
                };
                Mutex::new(Shard {
                    map: HashMap::with_hasher(Hasher::default()),
                    bytes: 0,
                    limit,
                    seq: 0,
                    next_sweep: 0,
                    listener: Arc::clone(listener),
                })
            })
            .collect();
        Self {
            shards,
            pick: Hasher::default(),
            bound,
        }
    }

    fn index_of(&self, key: &Key) -> usize {
        // The shard count is a power of two.
        (self.pick.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    fn lock_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        // Every change to a shard is a few map operations with no panic path
        // between them (allocation failure aborts): a poisoned lock still
        // guards a consistent shard.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard holding `key`, locked.
    pub(crate) fn lock(&self, key: &Key) -> MutexGuard<'_, Shard> {
        self.lock_at(self.index_of(key))
    }

    /// The shards holding `a` and `b`, locked in shard order (so two
    /// rotations never wait for each other in a cycle); `None` for `b` when
    /// both keys share a shard.
    pub(crate) fn lock_pair(
        &self,
        a: &Key,
        b: &Key,
    ) -> (MutexGuard<'_, Shard>, Option<MutexGuard<'_, Shard>>) {
        let (i, j) = (self.index_of(a), self.index_of(b));
        if i == j {
            return (self.lock_at(i), None);
        }
        if i < j {
            let first = self.lock_at(i);
            (first, Some(self.lock_at(j)))
        } else {
            let second = self.lock_at(j);
            (self.lock_at(i), Some(second))
        }
    }

    /// The entries held, expired ones not yet swept included.
    pub(crate) fn len(&self) -> u64 {
        (0..self.shards.len())
            .map(|i| self.lock_at(i).map.len() as u64)
            .sum()
    }

    /// The entries' weight, for a byte-bounded table (0 for another).
    pub(crate) fn bytes(&self) -> u64 {
        if !matches!(self.bound, Bound::Bytes(_)) {
            return 0;
        }
        (0..self.shards.len()).map(|i| self.lock_at(i).bytes).sum()
    }

    /// Drops every expired entry and brings every shard within its bound.
    pub(crate) fn sweep(&self, now: u64) {
        for i in 0..self.shards.len() {
            let mut shard = self.lock_at(i);
            shard.sweep(now);
            shard.enforce_bound(now);
        }
    }

    /// How many shards the table has.
    #[cfg(test)]
    fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

impl Shard {
    /// The buffer under `key`, unless absent or expired at `now`.
    pub(crate) fn get(&self, key: &Key, now: u64) -> Option<&[u8]> {
        self.map
            .get(key)
            .filter(|slot| !slot.stamp.expired(now))
            .map(|slot| &*slot.body)
    }

    /// Stores `body` under `key` as a `class` entry, to expire `ttl_ms`
    /// after `now`, replacing what was there; then sweeps (at most every
    /// [`SWEEP_INTERVAL_MS`]) and evicts past the bound.
    pub(crate) fn put(&mut self, key: Key, body: Box<[u8]>, now: u64, ttl_ms: u64, class: Class) {
        self.seq = self.seq.wrapping_add(1);
        let stamp = Stamp::new(now, ttl_ms, self.seq, class);
        let text = text_len(&key);
        self.bytes = self.bytes.saturating_add(weight(body.len(), text));
        if let Some(old) = self.map.insert(key, Slot { stamp, body }) {
            self.bytes = self.bytes.saturating_sub(weight(old.body.len(), text));
        }
        self.sweep_if_due(now);
        self.enforce_bound(now);
    }

    /// Changes a live entry's buffer in place with `change` and moves its
    /// deadline to `ttl_ms` after `now` (`change` must keep the buffer's
    /// length, so its weight holds; the class stays); then sweeps when due. `false` when `key`
    /// holds nothing live.
    pub(crate) fn touch(
        &mut self,
        key: &Key,
        now: u64,
        ttl_ms: u64,
        change: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let Some(slot) = self.map.get_mut(key) else {
            return false;
        };
        if slot.stamp.expired(now) || !change(&mut slot.body) {
            return false;
        }
        slot.stamp = Stamp::new(now, ttl_ms, seq, slot.stamp.class());
        self.sweep_if_due(now);
        true
    }

    /// Removes `key`'s entry (expired or not), telling the listener.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Box<[u8]>> {
        let slot = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(weight_of(key, &slot.body));
        self.listener.removed(key);
        Some(slot.body)
    }

    /// Sweeps when [`SWEEP_INTERVAL_MS`] has passed since the last sweep.
    fn sweep_if_due(&mut self, now: u64) {
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    /// Drops the entries expired at `now`.
    fn sweep(&mut self, now: u64) {
        self.next_sweep = now.saturating_add(SWEEP_INTERVAL_MS);
        self.remove_where(|stamp| stamp.expired(now));
    }

    /// Past this shard's share of the bound, drops expired entries, then the
    /// entries the eviction rule picks ([`eviction_threshold`]).
    fn enforce_bound(&mut self, now: u64) {
        let need = self.need();
        if need == 0 {
            return;
        }
        self.sweep(now);
        let need = self.need();
        let bytes = matches!(self.limit, Bound::Bytes(_));
        let mut entries: Vec<(Stamp, u64)> = self
            .map
            .iter()
            .map(|(key, slot)| {
                let cost = if bytes { weight_of(key, &slot.body) } else { 1 };
                (slot.stamp, cost)
            })
            .collect();
        if let Some(threshold) = eviction_threshold(&mut entries, need) {
            self.remove_where(|stamp| stamp <= threshold);
        }
    }

    /// How much must go (0 within the share).
    fn need(&self) -> u64 {
        match self.limit {
            Bound::Unbounded => 0,
            Bound::Entries(n) => to_free(self.map.len() as u64, n),
            Bound::Bytes(b) => to_free(self.bytes, b),
        }
    }

    /// Removes every entry whose stamp satisfies `drop_it`, telling the listener.
    fn remove_where(&mut self, drop_it: impl Fn(Stamp) -> bool) {
        let Shard {
            map,
            bytes,
            listener,
            ..
        } = self;
        map.retain(|key, slot| {
            if !drop_it(slot.stamp) {
                return true;
            }
            *bytes = bytes.saturating_sub(weight_of(key, &slot.body));
            listener.removed(key);
            false
        });
    }
}

/// What `key`'s entry holding `body` weighs.
fn weight_of(key: &Key, body: &[u8]) -> u64 {
    weight(body.len(), text_len(key))
}

/// The bytes of `key`'s text held apart from its slot (0 for a binary key).
fn text_len(key: &Key) -> usize {
    match key {
        Key::Text(text) => text.len(),
        Key::Uuid(_) | Key::Base64(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    fn key(n: u32) -> Key {
        Key::of(&SessionId::parse(&format!("table-test-{n:08}")).unwrap())
    }

    fn table(bound: Bound) -> Table {
        Table::new(bound, &Arc::new(PrincipalIndex::default()))
    }

    fn put(table: &Table, n: u32, now: u64, ttl: u64, len: usize) {
        put_as(table, n, now, ttl, len, Class::Anonymous);
    }

    fn put_as(table: &Table, n: u32, now: u64, ttl: u64, len: usize, class: Class) {
        table
            .lock(&key(n))
            .put(key(n), vec![0; len].into_boxed_slice(), now, ttl, class);
    }

    fn held(table: &Table, n: u32, now: u64) -> bool {
        table.lock(&key(n)).get(&key(n), now).is_some()
    }

    #[test]
    fn entries_expire_at_their_deadline_and_are_swept() {
        let table = table(Bound::Unbounded);
        for n in 0..200 {
            put(&table, n, 0, 50, 1);
        }
        put(&table, 999, 0, 5_000, 1);
        assert!(held(&table, 7, 49));
        assert!(!held(&table, 7, 50), "invisible once expired");
        assert_eq!(table.len(), 201, "until swept");
        table.sweep(50);
        assert_eq!(table.len(), 1);
        assert!(held(&table, 999, 50));
    }

    #[test]
    fn writes_sweep_their_shard_periodically() {
        let table = table(Bound::Entries(1));
        assert_eq!(table.shard_count(), 1);
        let table = self::table(Bound::Entries(100));
        put(&table, 1, 0, 10, 1);
        put(&table, 2, 5, 10, 1); // not yet time to sweep
        put(&table, 3, 20, 10_000, 1);
        assert_eq!(table.len(), 3, "the last sweep was at 0");
        put(&table, 4, SWEEP_INTERVAL_MS, 10_000, 1);
        assert_eq!(table.len(), 2, "expired entries go with the next due sweep");
    }

    #[test]
    fn a_count_bound_evicts_the_soonest_to_expire() {
        let table = table(Bound::Entries(10));
        for n in 0..100 {
            put(&table, n, 0, 60_000, 1);
        }
        assert_eq!(table.len(), 10);
        assert!(held(&table, 99, 1), "newest kept");
        assert!(!held(&table, 89, 1), "oldest of equal deadline gone");
        // A session with a later deadline outlives a newer one with an
        // earlier deadline.
        put(&table, 1_000, 0, 120_000, 1);
        for n in 100..120 {
            put(&table, n, 0, 60_000, 1);
        }
        assert!(held(&table, 1_000, 1));
    }

    #[test]
    fn a_byte_bound_counts_buffers_and_slots() {
        let bound = 64 * 1024;
        let table = table(Bound::Bytes(bound));
        for n in 0..1_000 {
            put(&table, n, 0, 60_000, 1_000);
        }
        assert!(table.bytes() <= bound, "{}", table.bytes());
        assert!(table.len() >= 55, "the bound is used: {}", table.len());
        assert!(held(&table, 999, 1));
        // Replacing an entry re-weighs it.
        let before = table.bytes();
        put(&table, 999, 0, 60_000, 10);
        assert_eq!(table.bytes(), before - 990);
    }

    #[test]
    fn a_flood_of_anonymous_entries_never_evicts_a_signed_in_one() {
        let bound = 64 * 1024;
        let table = table(Bound::Bytes(bound));
        // Ten signed-in sessions, about to expire; then a flood of fresh
        // anonymous ones, each far heavier, 50 times the bound.
        for n in 0..10 {
            put_as(&table, n, 0, 1_000, 100, Class::SignedIn);
        }
        for n in 100..3_300 {
            put(&table, n, 10, 60_000, 1_000);
        }
        assert!(table.bytes() <= bound, "{}", table.bytes());
        assert!((0..10).all(|n| held(&table, n, 11)), "every signed-in kept");
        assert!(held(&table, 3_299, 11), "the newest anonymous kept too");
        // A touch keeps the class: the signed-in entries still outlast a
        // second flood.
        for n in 0..10 {
            assert!(table.lock(&key(n)).touch(&key(n), 20, 1_000, |_| true));
        }
        for n in 4_000..7_200 {
            put(&table, n, 30, 60_000, 1_000);
        }
        assert!((0..10).all(|n| held(&table, n, 31)));
        // With no anonymous entry left to go, signed-in ones are evicted by
        // deadline like any other.
        let small = self::table(Bound::Entries(3));
        for n in 0..5 {
            put_as(&small, n, 0, 1_000 + u64::from(n), 1, Class::SignedIn);
        }
        assert_eq!(small.len(), 3);
        assert!(!held(&small, 0, 1) && held(&small, 4, 1));
    }

    #[test]
    fn touch_moves_the_deadline_of_live_entries_only() {
        let table = table(Bound::Unbounded);
        put(&table, 1, 0, 100, 4);
        let mut shard = table.lock(&key(1));
        assert!(shard.touch(&key(1), 50, 100, |body| {
            body[0] = 9;
            true
        }));
        assert_eq!(shard.get(&key(1), 149), Some(&[9, 0, 0, 0][..]));
        assert!(!shard.touch(&key(1), 150, 100, |_| true), "expired");
        assert!(!shard.touch(&key(2), 0, 100, |_| true), "absent");
        assert!(shard.remove(&key(1)).is_some());
        assert!(shard.remove(&key(1)).is_none());
    }

    #[test]
    fn removals_reach_the_index() {
        let index = Arc::new(PrincipalIndex::default());
        let table = Table::new(Bound::Unbounded, &index);
        let id = SessionId::parse("table-test-indexed").unwrap();
        let principal = crate::principal::Principal::of("p").unwrap();
        index.lock_for_insert().insert(principal, id.clone());
        let k = Key::of(&id);
        table
            .lock(&k)
            .put(k.clone(), Box::new([1]), 0, 10, Class::SignedIn);
        assert_eq!(index.lock().len(), 1);
        table.sweep(10);
        assert_eq!(index.lock().len(), 0, "expiry forgets the session");
    }
}

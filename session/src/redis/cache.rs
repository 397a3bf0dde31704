//! The read cache's decisions, sans-IO: which loads a cached entry may
//! answer, which read replies may be kept, and what an invalidation, a flush
//! or a lost connection does. `tracking.rs` drives it from the tracking
//! connection; nothing here touches a socket or a clock.
//!
//! **Coherence.** The cache is [`Coherence::Up`] only while the connection
//! that Redis tracks this cache's reads on (RESP3 `CLIENT TRACKING`) is
//! alive; it is tagged with that connection's generation. Every entry was
//! read on that connection, so Redis will tell the cache when any client
//! changes, deletes, expires or evicts its key. Losing the connection
//! ([`Cache::down`]) empties the cache and turns it off ([`Lookup::Bypass`])
//! until a new connection is up.
//!
//! **The race.** A read reply can be overtaken by the invalidation of the
//! key it read (the reply wakes the reader, the push is handled before the
//! reader runs again). So a read registers the key as *pending* before it
//! is sent ([`Cache::lookup`] answers [`Lookup::Miss`] with a [`Ticket`]),
//! every invalidation of a pending key bumps the key's epoch, and
//! [`Cache::finish`] keeps the reply only if the epoch and the connection
//! generation are still the ticket's.
//!
//! **Bound.** At most `capacity` entries, evicted by CLOCK (second chance):
//! a hit only sets the entry's reference bit; an insertion into a full cache
//! moves the hand over the slots, clearing set bits, and replaces the first
//! entry whose bit is clear. Pending reads are not entries: there are at
//! most as many as loads in flight.
//!
//! **Expiry.** An entry is served only while it is servable at the load's
//! `now` ([`servable`]): a session before its idle and absolute expiry, a
//! rotation tombstone before its `until`. Otherwise the load goes to Redis.

use std::collections::HashMap;

use super::codec::Stored;

type Hasher = foldhash::fast::RandomState;

/// Whether the cache may answer loads, and with which connection.
#[derive(Debug)]
pub(crate) enum Coherence<L> {
    /// No tracking connection: every load goes to Redis, nothing is kept.
    Down,
    /// Tracking is on on connection `link`, the `generation`th made.
    Up { generation: u64, link: L },
}

/// What a load does with the cache.
#[derive(Debug)]
pub(crate) enum Lookup<L> {
    /// Served from memory.
    Hit(Stored),
    /// Read the key on `link` (the tracked connection), then
    /// [`Cache::finish`] the ticket.
    Miss(Ticket, L),
    /// The cache is off: read through the pool, keep nothing.
    Bypass,
}

/// A read in flight: the key, the key's epoch and the connection's
/// generation when it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) key: String,
    epoch: u64,
    generation: u64,
}

impl Ticket {
    /// The connection generation the read goes out on.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// The cache's counters (see [`ReadCacheStats`](super::ReadCacheStats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) invalidations: u64,
    pub(crate) flushes: u64,
}

#[derive(Debug)]
struct Slot {
    key: String,
    value: Stored,
    referenced: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    readers: u32,
    epoch: u64,
}

/// The cache: entries, pending reads, coherence state and counters.
#[derive(Debug)]
pub(crate) struct Cache<L> {
    state: Coherence<L>,
    capacity: usize,
    slots: Vec<Slot>,
    index: HashMap<String, usize, Hasher>,
    hand: usize,
    pending: HashMap<String, Pending, Hasher>,
    counters: Counters,
}

/// Whether a cached hash may answer a load at `now`: a session before its
/// expiry (idle or absolute), a tombstone before the end of its grace
/// period. The runtime checks `Meta` again; this keeps an entry from
/// outliving what Redis itself would still hold.
pub(crate) fn servable(stored: &Stored, now: u64) -> bool {
    match stored {
        Stored::Session(record) => !record.meta.is_expired(now),
        Stored::Tombstone { until, .. } => *until > now,
    }
}

impl<L: Clone> Cache<L> {
    /// An empty cache of at most `capacity` entries (at least 1), down.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Coherence::Down,
            capacity: capacity.max(1),
            slots: Vec::new(),
            index: HashMap::default(),
            hand: 0,
            pending: HashMap::default(),
            counters: Counters::default(),
        }
    }

    /// What a load of `key` at `now` does.
    pub(crate) fn lookup(&mut self, key: &str, now: u64) -> Lookup<L> {
        let Coherence::Up { generation, link } = &self.state else {
            return Lookup::Bypass;
        };
        let (generation, link) = (*generation, link.clone());
        if let Some(&at) = self.index.get(key) {
            let slot = &mut self.slots[at];
            if servable(&slot.value, now) {
                slot.referenced = true;
                self.counters.hits += 1;
                return Lookup::Hit(slot.value.clone());
            }
            self.remove(key);
        }
        self.counters.misses += 1;
        let pending = self.pending.entry(key.to_owned()).or_insert(Pending {
            readers: 0,
            epoch: 0,
        });
        pending.readers += 1;
        Lookup::Miss(
            Ticket {
                key: key.to_owned(),
                epoch: pending.epoch,
                generation,
            },
            link,
        )
    }

    /// A read is over: keeps `value` (what the key held, `None` if nothing
    /// worth keeping or the read failed) only if nothing invalidated the key
    /// and the connection did not change since the read was sent. Returns
    /// whether it was kept.
    pub(crate) fn finish(&mut self, ticket: Ticket, value: Option<Stored>) -> bool {
        let Some(pending) = self.pending.get_mut(&ticket.key) else {
            return false;
        };
        let fresh = pending.epoch == ticket.epoch;
        pending.readers = pending.readers.saturating_sub(1);
        if pending.readers == 0 {
            self.pending.remove(&ticket.key);
        }
        let current = matches!(self.state, Coherence::Up { generation, .. } if generation == ticket.generation);
        match value {
            Some(value) if fresh && current => {
                self.insert(ticket.key, value);
                true
            }
            _ => false,
        }
    }

    /// `key` changed (Redis said so, or this instance wrote it): forget it,
    /// and make every read of it in flight drop its reply. `from_redis`
    /// counts it as an invalidation received.
    pub(crate) fn invalidate(&mut self, key: &str, from_redis: bool) {
        if from_redis {
            self.counters.invalidations += 1;
        }
        self.remove(key);
        if let Some(pending) = self.pending.get_mut(key) {
            pending.epoch += 1;
        }
    }

    /// Forgets every entry and every read in flight (Redis flushed the
    /// database, or the cache lost coherence). The cache stays up.
    pub(crate) fn flush(&mut self) {
        self.counters.flushes += 1;
        self.slots.clear();
        self.index.clear();
        self.hand = 0;
        for pending in self.pending.values_mut() {
            pending.epoch += 1;
        }
    }

    /// Tracking is on on `link`, connection number `generation`.
    pub(crate) fn up(&mut self, generation: u64, link: L) {
        if !matches!(self.state, Coherence::Down) {
            self.flush();
        }
        self.state = Coherence::Up { generation, link };
    }

    /// Connection number `generation` is lost: if it is the current one,
    /// flush and bypass the cache. Returns whether it was current.
    pub(crate) fn down(&mut self, generation: u64) -> bool {
        match self.state {
            Coherence::Up { generation: g, .. } if g == generation => {
                self.flush();
                self.state = Coherence::Down;
                true
            }
            _ => false,
        }
    }

    /// The current connection and its generation, if tracking is on.
    pub(crate) fn link(&self) -> Option<(u64, L)> {
        match &self.state {
            Coherence::Up { generation, link } => Some((*generation, link.clone())),
            Coherence::Down => None,
        }
    }

    /// Whether loads are served from memory now.
    pub(crate) fn coherent(&self) -> bool {
        matches!(self.state, Coherence::Up { .. })
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    fn insert(&mut self, key: String, value: Stored) {
        if let Some(&at) = self.index.get(&key) {
            self.slots[at].value = value;
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(key.clone(), self.slots.len());
            self.slots.push(Slot {
                key,
                value,
                referenced: false,
            });
            return;
        }
        // CLOCK: give referenced entries a second chance, replace the
        // first one that has none left. Ends within two turns of the hand.
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
                continue;
            }
            let old = std::mem::replace(
                slot,
                Slot {
                    key: key.clone(),
                    value,
                    referenced: false,
                },
            );
            self.index.remove(&old.key);
            self.index.insert(key, self.hand);
            self.hand += 1;
            return;
        }
    }

    fn remove(&mut self, key: &str) {
        let Some(at) = self.index.remove(key) else {
            return;
        };
        self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(moved.key.clone(), at);
        }
        if self.hand > self.slots.len() {
            self.hand = 0;
        }
    }
}

/// How long the tracker waits before its `attempt`th reconnection in a row
/// (1-based): 50 ms, doubling, at most 5 s.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    let millis = 50u64.saturating_mul(1 << attempt.saturating_sub(1).min(7));
    std::time::Duration::from_millis(millis.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Fields, Meta, Record};

    const T: u64 = 1_767_225_600_000;

    fn session(idle: u64) -> Stored {
        Stored::Session(Record {
            meta: Meta {
                created_at: T,
                id_issued_at: T,
                last_access: T,
                idle_timeout_ms: idle,
                absolute_deadline: None,
            },
            fields: Fields::default(),
        })
    }

    fn up(capacity: usize) -> Cache<u8> {
        let mut cache = Cache::new(capacity);
        cache.up(1, 7);
        cache
    }

    /// Reads `key` and keeps `value`; whether it was kept.
    fn read(cache: &mut Cache<u8>, key: &str, value: Stored) -> bool {
        match cache.lookup(key, T) {
            Lookup::Miss(ticket, link) => {
                assert_eq!(link, 7);
                cache.finish(ticket, Some(value))
            }
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    fn hit(cache: &mut Cache<u8>, key: &str, now: u64) -> bool {
        match cache.lookup(key, now) {
            Lookup::Hit(_) => true,
            Lookup::Miss(ticket, _) => {
                cache.finish(ticket, None);
                false
            }
            Lookup::Bypass => false,
        }
    }

    #[test]
    fn down_bypasses_and_keeps_nothing() {
        let mut cache = Cache::<u8>::new(4);
        assert!(matches!(cache.lookup("k", T), Lookup::Bypass));
        assert!(!cache.coherent());
        assert_eq!(cache.counters(), Counters::default());
    }

    #[test]
    fn a_read_is_kept_and_served_until_invalidated() {
        let mut cache = up(4);
        assert!(read(&mut cache, "k", session(1_000)));
        assert!(hit(&mut cache, "k", T));
        cache.invalidate("k", true);
        assert!(!hit(&mut cache, "k", T));
        let c = cache.counters();
        assert_eq!((c.hits, c.misses, c.invalidations), (1, 2, 1));
        cache.invalidate("k", false);
        assert_eq!(cache.counters().invalidations, 1, "local ones not counted");
    }

    #[test]
    fn a_reply_overtaken_by_its_invalidation_is_dropped() {
        let mut cache = up(4);
        let Lookup::Miss(ticket, _) = cache.lookup("k", T) else {
            panic!("miss")
        };
        cache.invalidate("k", true);
        assert!(!cache.finish(ticket, Some(session(1_000))));
        assert_eq!(cache.len(), 0);
        // The next read is fresh again.
        assert!(read(&mut cache, "k", session(1_000)));
    }

    #[test]
    fn concurrent_reads_of_one_key_each_see_the_invalidation() {
        let mut cache = up(4);
        let Lookup::Miss(first, _) = cache.lookup("k", T) else {
            panic!("miss")
        };
        cache.invalidate("k", true);
        let Lookup::Miss(second, _) = cache.lookup("k", T) else {
            panic!("miss")
        };
        assert!(!cache.finish(first, Some(session(1_000))));
        assert!(cache.finish(second, Some(session(1_000))), "sent after it");
        assert!(cache.pending.is_empty());
    }

    #[test]
    fn a_reply_from_before_a_flush_or_a_reconnection_is_dropped() {
        let mut cache = up(4);
        let Lookup::Miss(ticket, _) = cache.lookup("k", T) else {
            panic!("miss")
        };
        cache.flush();
        assert!(!cache.finish(ticket, Some(session(1_000))));

        let Lookup::Miss(ticket, _) = cache.lookup("k", T) else {
            panic!("miss")
        };
        assert!(cache.down(1));
        cache.up(2, 8);
        assert_eq!(ticket.generation(), 1);
        assert!(!cache.finish(ticket, Some(session(1_000))));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn losing_the_connection_flushes_and_bypasses() {
        let mut cache = up(4);
        assert!(read(&mut cache, "a", session(1_000)));
        assert!(read(&mut cache, "b", session(1_000)));
        assert!(!cache.down(2), "not the current connection");
        assert!(cache.coherent());
        assert!(cache.down(1));
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.counters().flushes, 1);
        assert!(matches!(cache.lookup("a", T), Lookup::Bypass));
        cache.up(2, 9);
        assert_eq!(cache.link(), Some((2, 9)));
        assert!(matches!(cache.lookup("a", T), Lookup::Miss(_, 9)));
    }

    #[test]
    fn expired_entries_are_never_served() {
        let mut cache = up(4);
        assert!(read(&mut cache, "s", session(1_000)));
        assert!(hit(&mut cache, "s", T + 999));
        assert!(!hit(&mut cache, "s", T + 1_000), "idle timeout reached");
        assert_eq!(cache.len(), 0);
        let tomb = Stored::Tombstone {
            to: b"next".to_vec(),
            forward: None,
            until: T + 10,
        };
        assert!(read(&mut cache, "t", tomb));
        assert!(hit(&mut cache, "t", T + 9));
        assert!(!hit(&mut cache, "t", T + 10), "grace period over");
    }

    #[test]
    fn clock_keeps_at_most_capacity_and_spares_referenced_entries() {
        let mut cache = up(3);
        for key in ["a", "b", "c"] {
            assert!(read(&mut cache, key, session(1_000)));
        }
        assert!(hit(&mut cache, "a", T));
        assert!(hit(&mut cache, "c", T));
        assert!(read(&mut cache, "d", session(1_000)));
        assert_eq!(cache.len(), 3);
        assert!(!hit(&mut cache, "b", T), "b had no second chance");
        for key in ["a", "c", "d"] {
            assert!(cache.index.contains_key(key), "{key}");
        }
        for n in 0..100 {
            assert!(read(&mut cache, &format!("k{n}"), session(1_000)));
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        for (at, slot) in cache.slots.iter().enumerate() {
            assert_eq!(cache.index[&slot.key], at);
        }
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        let mut cache = up(8);
        for key in ["a", "b", "c", "d"] {
            assert!(read(&mut cache, key, session(1_000)));
        }
        cache.invalidate("a", true);
        cache.invalidate("c", false);
        assert_eq!(cache.len(), 2);
        for (at, slot) in cache.slots.iter().enumerate() {
            assert_eq!(cache.index[&slot.key], at);
        }
        assert!(hit(&mut cache, "b", T) && hit(&mut cache, "d", T));
    }

    #[test]
    fn backoff_doubles_to_a_bound() {
        assert_eq!(backoff(1).as_millis(), 50);
        assert_eq!(backoff(2).as_millis(), 100);
        assert_eq!(backoff(5).as_millis(), 800);
        assert_eq!(backoff(8).as_millis(), 5_000);
        assert_eq!(backoff(u32::MAX).as_millis(), 5_000);
    }
}

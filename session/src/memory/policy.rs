//! The memory store's expiry and eviction decisions, as pure functions:
//! entry deadlines and their order, how a bound is split over the shards,
//! and which entries a full shard evicts.
//!
//! # Why anonymous sessions are evicted first
//!
//! A bounded store under pressure must drop someone. Anonymous sessions
//! (no principal: a cart, a counter) cost a client nothing to create: one
//! cookieless request each. Signed-in sessions (a principal is set) cost a
//! password, and `maxSessionsPerUser` caps how many one account holds. If
//! eviction looked at deadlines only, a flood of fresh anonymous sessions
//! would push out every older signed-in one, so anyone could sign every
//! user out. Hence the order: every anonymous entry goes before any
//! signed-in one; within a class, the closest to expiry first, and among
//! equal deadlines the least recently written. Losing an anonymous cart
//! under a flood is the price; a user's login never is while anonymous
//! entries remain. When signed-in sessions alone exceed the bound, the
//! same deadline order applies among them.

/// Ms of monotonic time (since the store's epoch) a deadline can name;
/// later deadlines are clamped to it (about 17 years).
pub(crate) const MAX_DEADLINE: u64 = (1 << 39) - 1;

/// Bits of the write sequence in a [`Stamp`].
const SEQ_BITS: u32 = 24;
/// The bit of a [`Stamp`] that marks a signed-in entry.
const SIGNED_IN: u64 = 1 << 63;

/// Which entries of a full shard go first (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// A session without a principal (or its rotation tombstone): evicted first.
    Anonymous,
    /// A session with a principal (or its rotation tombstone).
    SignedIn,
}

/// An entry's eviction [`Class`] (top bit), its deadline (monotonic ms) and,
/// below it, its shard's write sequence number, in one `u64`: ordering
/// stamps is the eviction order: anonymous before signed-in, then by
/// deadline, and among equal deadlines by write order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The stamp of a `class` entry written at `now` (monotonic ms) with
    /// `ttl_ms` to live, as the shard's `seq`-th write.
    pub(crate) fn new(now: u64, ttl_ms: u64, seq: u32, class: Class) -> Self {
        let deadline = now.saturating_add(ttl_ms).min(MAX_DEADLINE);
        let class = match class {
            Class::Anonymous => 0,
            Class::SignedIn => SIGNED_IN,
        };
        Self(class | deadline << SEQ_BITS | u64::from(seq & ((1 << SEQ_BITS) - 1)))
    }

    /// When the entry expires (monotonic ms).
    pub(crate) fn deadline(self) -> u64 {
        (self.0 & !SIGNED_IN) >> SEQ_BITS
    }

    /// The entry's eviction class.
    pub(crate) fn class(self) -> Class {
        if self.0 & SIGNED_IN == 0 {
            Class::Anonymous
        } else {
            Class::SignedIn
        }
    }

    /// Whether the entry is expired at `now` (monotonic ms).
    pub(crate) fn expired(self, now: u64) -> bool {
        now >= self.deadline()
    }
}

/// What bounds a store: nothing, a number of entries, or their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Only expiry removes entries.
    Unbounded,
    /// At most this many entries (rotation tombstones included).
    Entries(u64),
    /// At most about this many bytes of entries (see [`weight`]).
    Bytes(u64),
}

/// What one entry is taken to cost beyond its buffer: its map slot (key,
/// stamp, buffer pointer: 48 bytes) at the hash table's lowest load (half
/// full after it doubled), rounded up.
pub(crate) const SLOT_OVERHEAD: u64 = 100;

/// An entry's weight for a byte bound: its buffer, its key's text when the
/// id is not in a binary form, and [`SLOT_OVERHEAD`].
pub(crate) fn weight(body_len: usize, key_text_len: usize) -> u64 {
    (body_len as u64)
        .saturating_add(key_text_len as u64)
        .saturating_add(SLOT_OVERHEAD)
}

/// The fewest entries a shard of a bounded store is meant to hold, so that
/// the shards of a full store stay within a few per cent of each other.
const MIN_SHARE_ENTRIES: u64 = 4096;
/// The entry size assumed to split a byte bound before any entry is seen.
const ASSUMED_ENTRY_BYTES: u64 = 256;
/// The most shards a store has.
pub(crate) const MAX_SHARDS: usize = 64;

/// How many shards a store with `bound` uses on a machine running
/// `parallelism` threads: four per thread (a power of two, at most
/// [`MAX_SHARDS`]), fewer when a bounded store would otherwise give a shard
/// less than a few thousand entries (a store bounded to 10 entries has one
/// shard and evicts exactly by the rule below).
pub(crate) fn shard_count(bound: Bound, parallelism: usize) -> usize {
    let wanted = parallelism
        .saturating_mul(4)
        .clamp(1, MAX_SHARDS)
        .next_power_of_two();
    let entries = match bound {
        Bound::Unbounded => return wanted,
        Bound::Entries(n) => n,
        Bound::Bytes(b) => b / ASSUMED_ENTRY_BYTES,
    };
    let most = usize::try_from(entries / MIN_SHARE_ENTRIES).unwrap_or(usize::MAX);
    let mut count = wanted;
    while count > 1 && count > most {
        count /= 2;
    }
    count
}

/// Shard `index`'s share of `total` split over `shards` (the shares add up
/// to `total`).
pub(crate) fn share(total: u64, shards: usize, index: usize) -> u64 {
    let shards = shards.max(1) as u64;
    let index = index as u64;
    total / shards + u64::from(index < total % shards)
}

/// How much to free once a shard holds `held` (entries or bytes) against its
/// `share`: nothing within it; past it, the excess plus a sixteenth of the
/// share, so a full shard evicts in batches rather than on every write.
pub(crate) fn to_free(held: u64, share: u64) -> u64 {
    if held <= share {
        0
    } else {
        held - share + share / 16
    }
}

/// The eviction rule: given a full shard's entries as (stamp, cost) — cost 1
/// for an entry bound, the weight for a byte bound — the greatest stamp to
/// evict so that evicting every entry stamped at or below it frees at least
/// `need`. Anonymous entries go before signed-in ones; within a class the
/// closest to their deadline first, and among equal deadlines the least
/// recently written; `None` when nothing needs to go.
/// Sorts `entries`.
pub(crate) fn eviction_threshold(entries: &mut [(Stamp, u64)], need: u64) -> Option<Stamp> {
    if need == 0 {
        return None;
    }
    entries.sort_unstable_by_key(|&(stamp, _)| stamp);
    let mut freed = 0u64;
    let mut last = None;
    for &(stamp, cost) in entries.iter() {
        freed = freed.saturating_add(cost);
        last = Some(stamp);
        if freed >= need {
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_deadline_then_write() {
        let a = Class::Anonymous;
        let early = Stamp::new(1_000, 500, 9, a);
        let late = Stamp::new(1_000, 600, 1, a);
        assert!(early < late);
        assert!(
            Stamp::new(1_000, 500, 1, a) < early,
            "same deadline: write order"
        );
        assert_eq!(early.deadline(), 1_500);
        assert!(!early.expired(1_499));
        assert!(early.expired(1_500));
        // A deadline past the range is clamped, never wrapped.
        let never = Stamp::new(u64::MAX - 1, u64::MAX, 0, a);
        assert_eq!(never.deadline(), MAX_DEADLINE);
        assert!(late < never);
        assert_eq!(never.class(), Class::Anonymous);
    }

    #[test]
    fn signed_in_entries_order_after_every_anonymous_one() {
        let (a, s) = (Class::Anonymous, Class::SignedIn);
        let soon_signed_in = Stamp::new(0, 10, 0, s);
        let last_anonymous = Stamp::new(u64::MAX - 1, u64::MAX, u32::MAX, a);
        assert!(last_anonymous < soon_signed_in);
        assert_eq!(soon_signed_in.class(), Class::SignedIn);
        assert_eq!(
            soon_signed_in.deadline(),
            10,
            "the class bit is not the deadline"
        );
        let never = Stamp::new(u64::MAX - 1, u64::MAX, 0, s);
        assert_eq!(never.deadline(), MAX_DEADLINE);
        assert!(!never.expired(MAX_DEADLINE - 1));
        assert!(
            Stamp::new(0, 20, 0, s) > soon_signed_in,
            "deadline order within a class"
        );
        // A flood: 1,000 anonymous entries written after 3 signed-in ones
        // with earlier deadlines; freeing 1,000 takes every anonymous entry
        // and no signed-in one.
        let mut entries: Vec<(Stamp, u64)> = (0..3u32)
            .map(|seq| (Stamp::new(0, 100, seq, s), 1))
            .chain((0..1_000u32).map(|seq| (Stamp::new(50, 1_000, seq, a), 1)))
            .collect();
        let threshold = eviction_threshold(&mut entries, 1_000).unwrap();
        assert_eq!(threshold.class(), Class::Anonymous);
        assert_eq!(
            entries
                .iter()
                .filter(|(stamp, _)| *stamp <= threshold)
                .count(),
            1_000
        );
        // One more and the signed-in entry closest to expiry goes.
        let threshold = eviction_threshold(&mut entries, 1_001).unwrap();
        assert_eq!(threshold, Stamp::new(0, 100, 0, s));
    }

    #[test]
    fn small_bounds_get_one_shard() {
        assert_eq!(shard_count(Bound::Unbounded, 2), 8);
        assert_eq!(shard_count(Bound::Unbounded, 1000), MAX_SHARDS);
        assert_eq!(shard_count(Bound::Unbounded, 0), 1);
        assert_eq!(shard_count(Bound::Entries(10), 8), 1);
        assert_eq!(shard_count(Bound::Entries(4 * 4096), 8), 4);
        assert_eq!(shard_count(Bound::Entries(u64::MAX), 8), 32);
        assert_eq!(shard_count(Bound::Bytes(64 * 1024), 8), 1);
        assert_eq!(shard_count(Bound::Bytes(64 * 1024 * 1024), 2), 8);
    }

    #[test]
    fn shares_add_up() {
        let total: u64 = (0..7).map(|i| share(100, 7, i)).sum();
        assert_eq!(total, 100);
        assert_eq!(share(100, 7, 0), 15);
        assert_eq!(share(100, 7, 6), 14);
        assert_eq!(share(10, 1, 0), 10);
    }

    #[test]
    fn full_shards_free_in_batches() {
        assert_eq!(to_free(10, 10), 0);
        assert_eq!(to_free(11, 10), 1, "a small share evicts one at a time");
        assert_eq!(to_free(4097, 4096), 1 + 256);
    }

    #[test]
    fn the_soonest_to_expire_go_first() {
        let s = |deadline: u64, seq: u32| Stamp::new(0, deadline, seq, Class::Anonymous);
        let mut entries = vec![(s(30, 0), 1), (s(10, 1), 1), (s(20, 2), 1), (s(10, 0), 1)];
        assert_eq!(eviction_threshold(&mut entries, 0), None);
        assert_eq!(eviction_threshold(&mut entries, 1), Some(s(10, 0)));
        assert_eq!(eviction_threshold(&mut entries, 3), Some(s(20, 2)));
        assert_eq!(eviction_threshold(&mut entries, 99), Some(s(30, 0)));
        // By bytes: a heavy entry frees more at once.
        let mut weighted = vec![(s(10, 0), 100), (s(20, 0), 500), (s(30, 0), 100)];
        assert_eq!(eviction_threshold(&mut weighted, 150), Some(s(20, 0)));
        assert_eq!(eviction_threshold(&mut weighted, 100), Some(s(10, 0)));
    }
}

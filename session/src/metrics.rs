//! Metrics through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! sessionkit records its metrics with the `metrics` crate's macros. Nothing
//! is collected until the application installs a recorder (for instance
//! `metrics-exporter-prometheus`); without one each recording is a check of
//! a global and costs next to nothing. Call [`describe`] once after
//! installing the recorder so exporters can print help texts and units.
//!
//! Names and labels follow the Prometheus conventions. No label ever holds
//! a session id, a principal or a session value: every label value is one
//! of the few fixed words listed here, or a store's
//! [`label`](crate::store::SessionStore::label).
//!
//! | name | type | labels | moves when |
//! |---|---|---|---|
//! | `sessionkit_sessions_created_total` | counter | | a new session is first stored |
//! | `sessionkit_sessions_rotated_total` | counter | `cause` = `renew` \| `regenerate` | an id is rotated: auto-renewal (with a grace period) or `regenerate` |
//! | `sessionkit_sessions_destroyed_total` | counter | `cause` = `destroy` \| `emptied` | a stored session is deleted by `destroy`/`reset`, or because it holds no data any more |
//! | `sessionkit_sessions_expired_on_load_total` | counter | | a load finds a session past its idle or absolute timeout (it is deleted) |
//! | `sessionkit_sessions_revoked_total` | counter | | `SessionManager::delete_by_id` deletes a session |
//! | `sessionkit_session_ids_rejected_total` | counter | `reason` = `length` \| `character` \| `signature` \| `unknown` | a request presents a malformed id, an id without a valid signature (signed ids), or a well-formed one under which no live session is stored |
//! | `sessionkit_sessions_degraded_total` | counter | | a request runs with an anonymous, never-saved session because the store failed ([`FailurePolicy::Anonymous`](crate::FailurePolicy)) |
//! | `sessionkit_commits_total` | counter | `outcome` = `written` \| `unchanged` \| `empty` \| `gone` \| `conflict` \| `too_large` \| `discarded` | a commit ends; `unchanged` wrote nothing |
//! | `sessionkit_session_size_bytes` | histogram | | a write stores a session (its encoded size: names and values of every field) |
//! | `sessionkit_store_operation_duration_seconds` | histogram | `operation` = `load` \| `write` \| `delete`, `store` | a store operation ends, successfully or not |
//! | `sessionkit_store_errors_total` | counter | `operation`, `store`, `kind` = `unavailable` \| `timeout` \| `corrupt` \| `backend` \| `circuit_open` | a store operation fails |
//! | `sessionkit_circuit_breaker_state` | gauge | `store`, `state` = `closed` \| `open` \| `half_open` | a [`CircuitBreaker`](crate::breaker::CircuitBreaker) changes state (1 for the current state, 0 for the others) |
//! | `sessionkit_circuit_breaker_transitions_total` | counter | `store`, `state` | a breaker enters `state` |
//! | `sessionkit_circuit_breaker_rejected_total` | counter | `store` | a breaker fails an operation fast |
//! | `sessionkit_store_swept_total` | counter | `store`, `kind` = `session` \| `tombstone` | a store's sweeper deletes expired rows (PostgreSQL) |
//! | `sessionkit_store_sweep_duration_seconds` | histogram | `store` | a sweep ends |
//! | `sessionkit_store_sweep_failures_total` | counter | `store` | a sweep fails (the next one retries) |
//! | `sessionkit_store_read_cache_total` | counter | `store`, `event` = `hit` \| `miss` \| `invalidation` \| `flush` | the Redis read cache ([`RedisStoreBuilder::read_cache`](crate::RedisStoreBuilder::read_cache), feature `redis`) answers a load from memory (`hit`) or sends it to Redis (`miss`; loads while the cache is off count neither), receives an invalidation from Redis, or empties itself (the tracking connection was lost, or Redis flushed its database) |
//! | `sessionkit_events_dropped_total` | counter | | a lifecycle event is dropped because the listener's queue is full |
//! | `sessionkit_event_listener_panics_total` | counter | | a lifecycle event listener panics |
//!
//! ```
//! use sessionkit::metrics;
//! // After installing a recorder:
//! metrics::describe();
//! assert_eq!(metrics::SESSIONS_CREATED, "sessionkit_sessions_created_total");
//! ```

use std::time::Duration;

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, histogram, Key, Label, Level,
    Metadata, Unit,
};

/// Counter: sessions first stored.
pub const SESSIONS_CREATED: &str = "sessionkit_sessions_created_total";
/// Counter: id rotations, by `cause`.
pub const SESSIONS_ROTATED: &str = "sessionkit_sessions_rotated_total";
/// Counter: stored sessions deleted by the application or because they emptied, by `cause`.
pub const SESSIONS_DESTROYED: &str = "sessionkit_sessions_destroyed_total";
/// Counter: sessions found expired when loaded.
pub const SESSIONS_EXPIRED_ON_LOAD: &str = "sessionkit_sessions_expired_on_load_total";
/// Counter: sessions deleted by id (`SessionManager::delete_by_id`).
pub const SESSIONS_REVOKED: &str = "sessionkit_sessions_revoked_total";
/// Counter: ids presented by clients that were refused, by `reason`.
pub const IDS_REJECTED: &str = "sessionkit_session_ids_rejected_total";
/// Counter: requests served with an anonymous session after a store failure.
pub const SESSIONS_DEGRADED: &str = "sessionkit_sessions_degraded_total";
/// Counter: commits, by `outcome`.
pub const COMMITS: &str = "sessionkit_commits_total";
/// Histogram: the encoded size of each stored session, in bytes.
pub const SESSION_SIZE: &str = "sessionkit_session_size_bytes";
/// Histogram: store operation latency in seconds, by `operation` and `store`.
pub const STORE_DURATION: &str = "sessionkit_store_operation_duration_seconds";
/// Counter: failed store operations, by `operation`, `store` and `kind`.
pub const STORE_ERRORS: &str = "sessionkit_store_errors_total";
/// Gauge: 1 for a circuit breaker's current `state`, 0 for the others.
pub const BREAKER_STATE: &str = "sessionkit_circuit_breaker_state";
/// Counter: circuit breaker state changes, by the `state` entered.
pub const BREAKER_TRANSITIONS: &str = "sessionkit_circuit_breaker_transitions_total";
/// Counter: operations a circuit breaker failed fast.
pub const BREAKER_REJECTED: &str = "sessionkit_circuit_breaker_rejected_total";
/// Counter: expired rows a store's sweeper deleted, by `store` and `kind`.
pub const STORE_SWEPT: &str = "sessionkit_store_swept_total";
/// Histogram: how long a store's sweep took, in seconds, by `store`.
pub const STORE_SWEEP_DURATION: &str = "sessionkit_store_sweep_duration_seconds";
/// Counter: failed sweeps, by `store`.
pub const STORE_SWEEP_FAILURES: &str = "sessionkit_store_sweep_failures_total";
/// Counter: the Redis read cache's hits, misses, invalidations received and
/// flushes, by `event`.
pub const STORE_READ_CACHE: &str = "sessionkit_store_read_cache_total";
/// Counter: lifecycle events dropped on a full queue.
pub const EVENTS_DROPPED: &str = "sessionkit_events_dropped_total";
/// Counter: lifecycle event listener panics.
pub const LISTENER_PANICS: &str = "sessionkit_event_listener_panics_total";

/// Registers the help text and unit of every sessionkit metric with the
/// installed recorder. Call it once, after installing the recorder; without
/// one it does nothing.
pub fn describe() {
    describe_counter!(SESSIONS_CREATED, "Sessions first stored.");
    describe_counter!(
        SESSIONS_ROTATED,
        "Session id rotations: renew (automatic, with a grace period) or regenerate."
    );
    describe_counter!(
        SESSIONS_DESTROYED,
        "Stored sessions deleted: destroy (destroy or reset) or emptied (no data left)."
    );
    describe_counter!(
        SESSIONS_EXPIRED_ON_LOAD,
        "Sessions found past their idle or absolute timeout when loaded."
    );
    describe_counter!(SESSIONS_REVOKED, "Sessions deleted by id.");
    describe_counter!(
        IDS_REJECTED,
        "Client session ids refused: malformed (length, character), unsigned (signature) or unknown."
    );
    describe_counter!(
        SESSIONS_DEGRADED,
        "Requests served with an anonymous, never-saved session after a store failure."
    );
    describe_counter!(
        COMMITS,
        "Session commits by outcome; unchanged wrote nothing."
    );
    describe_histogram!(
        SESSION_SIZE,
        Unit::Bytes,
        "Encoded size of stored sessions."
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Session store operation latency."
    );
    describe_counter!(STORE_ERRORS, "Failed session store operations by kind.");
    describe_gauge!(
        BREAKER_STATE,
        "1 for the circuit breaker's current state, 0 for the others."
    );
    describe_counter!(BREAKER_TRANSITIONS, "Circuit breaker state changes.");
    describe_counter!(
        BREAKER_REJECTED,
        "Store operations failed fast by an open circuit breaker."
    );
    describe_counter!(
        STORE_SWEPT,
        "Expired rows deleted by a store's sweeper: sessions and rotation tombstones."
    );
    describe_histogram!(
        STORE_SWEEP_DURATION,
        Unit::Seconds,
        "Duration of a store's sweep of expired rows."
    );
    describe_counter!(STORE_SWEEP_FAILURES, "Failed sweeps of expired rows.");
    describe_counter!(
        STORE_READ_CACHE,
        "Redis read cache events: hits, misses, invalidations received from Redis, flushes."
    );
    describe_counter!(
        EVENTS_DROPPED,
        "Lifecycle events dropped on a full listener queue."
    );
    describe_counter!(LISTENER_PANICS, "Lifecycle event listener panics.");
}

/// A store operation, the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOperation {
    /// [`SessionStore::load`](crate::store::SessionStore::load).
    Load,
    /// [`SessionStore::write`](crate::store::SessionStore::write).
    Write,
    /// [`SessionStore::delete`](crate::store::SessionStore::delete).
    Delete,
}

impl StoreOperation {
    /// The label value: `load`, `write` or `delete`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }
}

/// Why a commit ended as it did, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitOutcome {
    Written,
    /// Written by another request of the session with its own (group
    /// commit).
    Folded,
    Unchanged,
    Empty,
    Gone,
    Conflict,
    TooLarge,
    Discarded,
}

impl CommitOutcome {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Folded => "folded",
            Self::Unchanged => "unchanged",
            Self::Empty => "empty",
            Self::Gone => "gone",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::Discarded => "discarded",
        }
    }
}

/// The metadata of every sessionkit metric (what the macros would give).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The `outcome` labels of [`COMMITS`], in [`CommitOutcome`]'s order.
static OUTCOME_LABELS: [[Label; 1]; 8] = [
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Written.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Folded.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Unchanged.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Empty.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Gone.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Conflict.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::TooLarge.as_str(),
    )],
    [Label::from_static_parts(
        "outcome",
        CommitOutcome::Discarded.as_str(),
    )],
];

/// The keys of [`COMMITS`], one per [`CommitOutcome`]: built once, so recording
/// a commit allocates nothing (the macros build a key with dynamic labels
/// on every call).
static COMMIT_KEYS: [Key; 8] = [
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[0]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[1]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[2]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[3]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[4]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[5]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[6]),
    Key::from_static_parts(COMMITS, &OUTCOME_LABELS[7]),
];

pub(crate) fn commit(outcome: CommitOutcome) {
    let key = &COMMIT_KEYS[outcome as usize];
    ::metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
}

pub(crate) fn created() {
    counter!(SESSIONS_CREATED).increment(1);
}

pub(crate) fn rotated(cause: &'static str) {
    counter!(SESSIONS_ROTATED, "cause" => cause).increment(1);
}

pub(crate) fn destroyed(cause: &'static str) {
    counter!(SESSIONS_DESTROYED, "cause" => cause).increment(1);
}

pub(crate) fn expired_on_load() {
    counter!(SESSIONS_EXPIRED_ON_LOAD).increment(1);
}

pub(crate) fn revoked() {
    counter!(SESSIONS_REVOKED).increment(1);
}

pub(crate) fn rejected(reason: &'static str) {
    counter!(IDS_REJECTED, "reason" => reason).increment(1);
}

pub(crate) fn degraded() {
    counter!(SESSIONS_DEGRADED).increment(1);
}

pub(crate) fn session_size(bytes: usize) {
    #[allow(clippy::cast_precision_loss)]
    histogram!(SESSION_SIZE).record(bytes as f64);
}

/// The [`STORE_DURATION`] keys of one store, one per [`StoreOperation`],
/// built when the manager wraps the store, so timing an operation
/// allocates nothing.
pub(crate) struct StoreKeys {
    store: &'static str,
    durations: [Key; 3],
}

impl StoreKeys {
    pub(crate) fn new(store: &'static str) -> Self {
        let key = |operation: StoreOperation| {
            Key::from_parts(
                STORE_DURATION,
                vec![
                    Label::from_static_parts("operation", operation.as_str()),
                    Label::from_static_parts("store", store),
                ],
            )
        };
        Self {
            store,
            durations: [
                key(StoreOperation::Load),
                key(StoreOperation::Write),
                key(StoreOperation::Delete),
            ],
        }
    }
}

pub(crate) fn store_operation(
    keys: &StoreKeys,
    operation: StoreOperation,
    took: Duration,
    error: Option<&'static str>,
) {
    let key = &keys.durations[operation as usize];
    ::metrics::with_recorder(|r| {
        r.register_histogram(key, &METADATA)
            .record(took.as_secs_f64());
    });
    if let Some(kind) = error {
        let (operation, store) = (operation.as_str(), keys.store);
        counter!(STORE_ERRORS, "operation" => operation, "store" => store, "kind" => kind)
            .increment(1);
    }
}

#[cfg(feature = "postgres")]
pub(crate) fn swept(store: &'static str, sessions: u64, tombstones: u64, took: Duration) {
    counter!(STORE_SWEPT, "store" => store, "kind" => "session").increment(sessions);
    counter!(STORE_SWEPT, "store" => store, "kind" => "tombstone").increment(tombstones);
    histogram!(STORE_SWEEP_DURATION, "store" => store).record(took.as_secs_f64());
}

#[cfg(feature = "postgres")]
pub(crate) fn sweep_failed(store: &'static str) {
    counter!(STORE_SWEEP_FAILURES, "store" => store).increment(1);
}

/// `count` read cache events of one kind (`hit`, `miss`, `invalidation`,
/// `flush`), on the single-node Redis store (the only one with a cache).
#[cfg(feature = "redis")]
pub(crate) fn read_cache(event: &'static str, count: u64) {
    counter!(STORE_READ_CACHE, "store" => "redis", "event" => event).increment(count);
}

pub(crate) fn events_dropped() {
    counter!(EVENTS_DROPPED).increment(1);
}

pub(crate) fn listener_panicked() {
    counter!(LISTENER_PANICS).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_key() {
        let outcomes = [
            CommitOutcome::Written,
            CommitOutcome::Folded,
            CommitOutcome::Unchanged,
            CommitOutcome::Empty,
            CommitOutcome::Gone,
            CommitOutcome::Conflict,
            CommitOutcome::TooLarge,
            CommitOutcome::Discarded,
        ];
        assert_eq!(outcomes.len(), COMMIT_KEYS.len());
        for outcome in outcomes {
            let key = &COMMIT_KEYS[outcome as usize];
            assert_eq!(key.name(), COMMITS);
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels, [("outcome", outcome.as_str())]);
        }
    }

    #[test]
    fn store_keys_are_indexed_by_operation() {
        let keys = StoreKeys::new("memory");
        for operation in [
            StoreOperation::Load,
            StoreOperation::Write,
            StoreOperation::Delete,
        ] {
            let key = &keys.durations[operation as usize];
            assert_eq!(key.name(), STORE_DURATION);
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(
                labels,
                [("operation", operation.as_str()), ("store", "memory")]
            );
        }
    }
}

//! A circuit breaker around any store: after a run of failures it fails
//! operations fast for a cool-down instead of letting every request wait
//! for a dead backend, then lets one probe through and closes on success.
//!
//! The decisions are a pure state machine (`Machine`), tested transition
//! by transition below; [`CircuitBreaker`] only runs it around the store.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{BREAKER_REJECTED, BREAKER_STATE, BREAKER_TRANSITIONS};
use crate::store::{Call, SessionStore, StoreError, StoreLayer};

/// The default number of consecutive failures that opens the breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// The default time an open breaker fails fast before it lets a probe through.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);

/// When a [`CircuitBreaker`] opens and for how long.
///
/// ```
/// use std::time::Duration;
/// use sessionkit::breaker::BreakerConfig;
/// let config = BreakerConfig::default()
///     .with_failure_threshold(3)
///     .with_cool_down(Duration::from_millis(500));
/// assert_eq!(BreakerConfig::default().failure_threshold(), 5);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct BreakerConfig {
    failure_threshold: u32,
    cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cool_down: DEFAULT_COOL_DOWN,
        }
    }
}

impl BreakerConfig {
    /// Opens after `n` consecutive failures or timeouts (at least 1; default
    /// [`DEFAULT_FAILURE_THRESHOLD`], 5).
    pub fn with_failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// Fails fast for `cool_down` once open, then lets one probe through
    /// (default [`DEFAULT_COOL_DOWN`], 1 s).
    pub fn with_cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// The configured failure threshold.
    #[must_use]
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The configured cool-down.
    #[must_use]
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Operations go to the store.
    Closed,
    /// Operations fail fast with [`CircuitOpen`].
    Open,
    /// One probe operation is with the store; the others fail fast.
    HalfOpen,
}

impl BreakerState {
    /// The metrics label: `closed`, `open` or `half_open`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// The cause of the [`StoreError::Unavailable`] an open breaker answers with.
///
/// The failures that opened the breaker were reported when they happened;
/// this error says only that the store was not asked.
///
/// ```
/// use sessionkit::breaker::CircuitOpen;
/// use sessionkit::store::StoreError;
/// fn retry_after(error: &StoreError) -> Option<std::time::Duration> {
///     match error {
///         StoreError::Unavailable(cause) => cause.downcast_ref::<CircuitOpen>().map(CircuitOpen::retry_in),
///         _ => None,
///     }
/// }
/// # let _ = retry_after;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_in: Duration,
}

impl CircuitOpen {
    /// How long until the breaker lets a probe through.
    #[must_use]
    pub fn retry_in(&self) -> Duration {
        self.retry_in
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the circuit breaker is open after repeated store failures; the store was not asked and is probed again in {:?}",
            self.retry_in
        )
    }
}

impl std::error::Error for CircuitOpen {}

impl StoreError {
    /// Whether a [`CircuitBreaker`] failed this operation fast without
    /// asking the store.
    #[must_use]
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, Self::Unavailable(cause) if cause.is::<CircuitOpen>())
    }
}

/// What the machine lets an operation do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Go to the store (closed).
    Pass,
    /// Go to the store as the one probe (half-open).
    Probe,
    /// Fail fast.
    Reject { retry_in: Duration },
}

/// How an admitted operation ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The store answered (also with `Corrupt` or `Unsupported`: it is up).
    Success,
    /// Unavailable, timed out or failed.
    Failure,
    /// The operation was dropped before it ended (a cancelled request).
    Abandoned,
}

impl Attempt {
    fn of<T>(result: &Result<T, StoreError>) -> Self {
        match result {
            Ok(_) | Err(StoreError::Corrupt(_) | StoreError::Unsupported(_)) => Self::Success,
            Err(_) => Self::Failure,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker's decisions, free of I/O: every method takes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    config: BreakerConfig,
    phase: Phase,
}

impl Machine {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            phase: Phase::Closed { failures: 0 },
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether an operation starting at `now` may go to the store, and the
    /// state entered, if any.
    pub(crate) fn admit(&mut self, now: Instant) -> (Admit, Option<BreakerState>) {
        match self.phase {
            Phase::Closed { .. } => (Admit::Pass, None),
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { probing: true };
                (Admit::Probe, Some(BreakerState::HalfOpen))
            }
            Phase::Open { until } => (
                Admit::Reject {
                    retry_in: until - now,
                },
                None,
            ),
            Phase::HalfOpen { probing: true } => (
                Admit::Reject {
                    retry_in: Duration::ZERO,
                },
                None,
            ),
            Phase::HalfOpen { probing: false } => {
                self.phase = Phase::HalfOpen { probing: true };
                (Admit::Probe, None)
            }
        }
    }

    /// An admitted operation ended at `now`; `probe` when it was the probe.
    /// Returns the state entered, if any.
    pub(crate) fn record(
        &mut self,
        probe: bool,
        outcome: Attempt,
        now: Instant,
    ) -> Option<BreakerState> {
        let open = Phase::Open {
            until: now + self.config.cool_down,
        };
        match (probe, outcome, self.phase) {
            (true, Attempt::Success, _) => {
                self.phase = Phase::Closed { failures: 0 };
                Some(BreakerState::Closed)
            }
            (true, Attempt::Failure, _) => {
                self.phase = open;
                Some(BreakerState::Open)
            }
            (true, Attempt::Abandoned, _) => {
                self.phase = Phase::HalfOpen { probing: false };
                None
            }
            (false, Attempt::Success, Phase::Closed { .. }) => {
                self.phase = Phase::Closed { failures: 0 };
                None
            }
            (false, Attempt::Failure, Phase::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    self.phase = open;
                    Some(BreakerState::Open)
                } else {
                    self.phase = Phase::Closed { failures };
                    None
                }
            }
            // Stragglers admitted before the breaker opened, and abandoned
            // ordinary operations, change nothing.
            (false, _, _) => None,
        }
    }
}

/// A store wrapper that fails fast while its store keeps failing.
///
/// After [`BreakerConfig::failure_threshold`] consecutive failures or
/// timeouts (default 5) the breaker **opens**: every operation fails at
/// once with [`StoreError::Unavailable`] caused by [`CircuitOpen`], so
/// requests get the error handler's answer (or an anonymous session, see
/// [`FailurePolicy`](crate::FailurePolicy)) in microseconds instead of
/// after the store's timeout. After the cool-down (default 1 s) it is
/// **half-open**: one operation goes to the store as a probe while the
/// others still fail fast; the probe's success **closes** the breaker, its
/// failure opens it for another cool-down. `Corrupt` answers count as
/// successes (the store answered).
///
/// Put a timeout inside it (the Redis store has its own; wrap other stores
/// in a [`TimeoutStore`](crate::timeout::TimeoutStore)), so a hung store fails and is
/// counted. Clones share one breaker. Its state is exported as the
/// `sessionkit_circuit_breaker_*` metrics (see [`crate::metrics`]).
///
/// ```
/// use std::time::Duration;
/// use sessionkit::{MemoryStore, SessionManager};
/// use sessionkit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
/// use sessionkit::timeout::TimeoutStore;
/// # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
/// let store = TimeoutStore::new(MemoryStore::new(), Duration::from_millis(500));
/// let breaker = CircuitBreaker::with_config(store, BreakerConfig::default().with_failure_threshold(5));
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// let manager = SessionManager::<Data>::new(breaker.clone());
/// # let _ = manager;
/// ```
pub struct CircuitBreaker<S> {
    inner: S,
    machine: Arc<Mutex<Machine>>,
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            machine: Arc::clone(&self.machine),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machine = *self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("config", &machine.config)
            .field("state", &machine.state())
            .finish()
    }
}

impl<S: SessionStore> CircuitBreaker<S> {
    /// Wraps `inner` with the default thresholds.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, BreakerConfig::default())
    }

    /// Wraps `inner` with `config`.
    pub fn with_config(inner: S, config: BreakerConfig) -> Self {
        let breaker = Self {
            inner,
            machine: Arc::new(Mutex::new(Machine::new(config))),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Where the breaker stands now (a breaker whose cool-down has passed
    /// still says `Open` until the next operation probes).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        // The machine is plain data, consistent after every method.
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, entered: BreakerState) {
        let store = self.inner.label();
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            let value = if state == entered { 1.0 } else { 0.0 };
            ::metrics::gauge!(BREAKER_STATE, "store" => store, "state" => state.as_str())
                .set(value);
        }
        ::metrics::counter!(BREAKER_TRANSITIONS, "store" => store, "state" => entered.as_str())
            .increment(1);
    }

    fn entered(&self, state: Option<BreakerState>) {
        let Some(state) = state else { return };
        match state {
            BreakerState::Open => tracing::warn!(
                store = self.inner.label(),
                "session store circuit breaker opened: operations fail fast until a probe succeeds"
            ),
            BreakerState::HalfOpen => tracing::info!(
                store = self.inner.label(),
                "session store circuit breaker half-open: probing the store"
            ),
            BreakerState::Closed => tracing::info!(
                store = self.inner.label(),
                "session store circuit breaker closed: the store answered"
            ),
        }
        self.publish(state);
    }

    async fn guard<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        let (admit, entered) = self.lock().admit(Instant::now());
        self.entered(entered);
        let probe = match admit {
            Admit::Pass => false,
            Admit::Probe => true,
            Admit::Reject { retry_in } => {
                ::metrics::counter!(BREAKER_REJECTED, "store" => self.inner.label()).increment(1);
                return Err(StoreError::unavailable(CircuitOpen { retry_in }));
            }
        };
        let mut pending = Pending {
            breaker: self,
            probe,
            armed: true,
        };
        let result = op.await;
        pending.armed = false;
        let entered = self
            .lock()
            .record(probe, Attempt::of(&result), Instant::now());
        self.entered(entered);
        result
    }
}

/// Reports an admitted operation as abandoned if its future is dropped
/// before it ends, so a cancelled probe does not leave the breaker half-open
/// with nobody probing.
struct Pending<'a, S: SessionStore> {
    breaker: &'a CircuitBreaker<S>,
    probe: bool,
    armed: bool,
}

impl<S: SessionStore> Drop for Pending<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            let entered =
                self.breaker
                    .lock()
                    .record(self.probe, Attempt::Abandoned, Instant::now());
            self.breaker.entered(entered);
        }
    }
}

impl<S: SessionStore> StoreLayer for CircuitBreaker<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        _call: Call<'a>,
        operation: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a {
        self.guard(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(1);

    fn machine(threshold: u32) -> Machine {
        Machine::new(
            BreakerConfig::default()
                .with_failure_threshold(threshold)
                .with_cool_down(COOL),
        )
    }

    fn fail(m: &mut Machine, now: Instant) -> Option<BreakerState> {
        assert_eq!(m.admit(now).0, Admit::Pass);
        m.record(false, Attempt::Failure, now)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let t = Instant::now();
        let mut m = machine(3);
        assert_eq!(fail(&mut m, t), None);
        assert_eq!(fail(&mut m, t), None);
        assert_eq!(m.state(), BreakerState::Closed);
        assert_eq!(fail(&mut m, t), Some(BreakerState::Open));
        assert_eq!(m.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t = Instant::now();
        let mut m = machine(2);
        fail(&mut m, t);
        assert_eq!(m.record(false, Attempt::Success, t), None);
        assert_eq!(fail(&mut m, t), None, "one failure after a success");
        assert_eq!(fail(&mut m, t), Some(BreakerState::Open));
    }

    #[test]
    fn open_rejects_until_the_cool_down_then_lets_one_probe_through() {
        let t = Instant::now();
        let mut m = machine(1);
        fail(&mut m, t);
        let half = t + COOL / 2;
        assert_eq!(m.admit(half), (Admit::Reject { retry_in: COOL / 2 }, None));
        let later = t + COOL;
        assert_eq!(m.admit(later), (Admit::Probe, Some(BreakerState::HalfOpen)));
        // While the probe is out, everyone else fails fast.
        assert!(matches!(m.admit(later).0, Admit::Reject { .. }));
        assert_eq!(m.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn the_probe_closes_or_reopens() {
        let t = Instant::now();
        let mut m = machine(1);
        fail(&mut m, t);
        let t1 = t + COOL;
        m.admit(t1);
        assert_eq!(
            m.record(true, Attempt::Failure, t1),
            Some(BreakerState::Open)
        );
        assert!(
            matches!(m.admit(t1 + COOL / 2).0, Admit::Reject { .. }),
            "a new cool-down"
        );
        let t2 = t1 + COOL;
        assert_eq!(m.admit(t2).0, Admit::Probe);
        assert_eq!(
            m.record(true, Attempt::Success, t2),
            Some(BreakerState::Closed)
        );
        assert_eq!(m.admit(t2).0, Admit::Pass);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_operation_probe() {
        let t = Instant::now();
        let mut m = machine(1);
        fail(&mut m, t);
        m.admit(t + COOL);
        assert_eq!(m.record(true, Attempt::Abandoned, t + COOL), None);
        assert_eq!(m.admit(t + COOL), (Admit::Probe, None));
    }

    #[test]
    fn stragglers_do_not_move_an_open_breaker() {
        let t = Instant::now();
        let mut m = machine(1);
        m.admit(t);
        m.admit(t);
        assert_eq!(
            m.record(false, Attempt::Failure, t),
            Some(BreakerState::Open)
        );
        // The second operation, admitted while closed, ends after it opened.
        assert_eq!(m.record(false, Attempt::Success, t), None);
        assert_eq!(m.state(), BreakerState::Open);
        assert_eq!(m.record(false, Attempt::Failure, t), None);
    }

    #[test]
    fn corrupt_answers_are_answers() {
        assert_eq!(
            Attempt::of::<()>(&Err(StoreError::Corrupt("x".into()))),
            Attempt::Success
        );
        assert_eq!(
            Attempt::of::<()>(&Err(StoreError::Timeout(COOL))),
            Attempt::Failure
        );
    }

    #[test]
    fn the_open_error_says_the_store_was_not_asked() {
        let error = StoreError::unavailable(CircuitOpen { retry_in: COOL });
        assert!(error.is_circuit_open());
        assert!(!StoreError::Timeout(COOL).is_circuit_open());
        assert_eq!(crate::observe::error_kind(&error), "circuit_open");
        let chain = crate::ErrorChain(&error).to_string();
        assert_eq!(chain.matches("circuit breaker").count(), 1, "{chain}");
    }
}

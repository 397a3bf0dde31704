//! Lifecycle events: a listener the application registers on the manager
//! hears when sessions are created, rotated, destroyed, revoked, found
//! expired, or when the store fails.
//!
//! Events are delivered on a thread of their own through a bounded queue:
//! a slow listener never delays a request (events that do not fit in the
//! queue are dropped and counted), and a listener that panics never fails
//! one (the panic is caught and counted, and the listener keeps receiving
//! events). Events name a session by its [`Fingerprint`], never by its id.
//!
//! ```
//! use std::sync::mpsc;
//! use sessionkit::events::{EventKind, SessionEvent};
//! use sessionkit::{MemoryStore, SessionData, SessionManager};
//!
//! #[derive(SessionData, Default, Clone)]
//! struct Login {
//!     user: Option<u64>,
//! }
//!
//! let (tx, rx) = mpsc::channel();
//! let manager = SessionManager::<Login>::builder(MemoryStore::new())
//!     .on_event(move |event: SessionEvent<Login>| {
//!         let _ = tx.send((event.kind, event.snapshot.and_then(|s| s.user)));
//!     })
//!     .build()?;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let session = manager.create()?;
//! session.set_user(Some(7));
//! session.save().await?;
//! # Ok::<(), sessionkit::SessionError>(()) }).unwrap();
//! let (kind, user) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
//! assert_eq!(kind, EventKind::Created);
//! assert_eq!(user, Some(7));
//! # Ok::<(), sessionkit::ConfigError>(())
//! ```

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::id::SessionId;
use crate::metrics::StoreOperation;

/// How many events wait for a slow listener before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// A short, stable digest of a session id that cannot be used as the id:
/// the first 9 bytes of SHA-256(id), as 12 characters of base64url.
///
/// Safe to log and to put in spans: it correlates the log lines and events
/// of one session, and it is the start of the session's Redis key (after the
/// prefix), so an operator can find the key from a log line. Nobody can turn
/// it back into the id.
///
/// ```
/// let id = sessionkit::id::SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f")?;
/// let fp = id.fingerprint();
/// assert_eq!(fp.to_string().len(), 12);
/// assert!(!fp.to_string().contains("3f1c"));
/// # Ok::<(), sessionkit::id::InvalidId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 9]);

impl Fingerprint {
    /// The fingerprint of `id`.
    #[must_use]
    pub fn of(id: &SessionId) -> Self {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let mut bytes = [0; 9];
        bytes.copy_from_slice(&digest[..9]);
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl SessionId {
    /// This id's [`Fingerprint`], for logs, spans and events.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self)
    }
}

/// Why an id was rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RotationCause {
    /// Auto-renewal: the id reached `autoRenewAfter`; the old id forwards to
    /// the new one for the grace period.
    Renew,
    /// [`Session::regenerate`](crate::Session::regenerate): the old id
    /// stopped working at once.
    Regenerate,
}

impl RotationCause {
    /// The metrics label: `renew` or `regenerate`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Renew => "renew",
            Self::Regenerate => "regenerate",
        }
    }
}

/// Why a stored session was deleted by a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DestroyCause {
    /// [`Session::destroy`](crate::Session::destroy) or
    /// [`Session::reset`](crate::Session::reset).
    Destroy,
    /// The session holds no data any more.
    Emptied,
}

impl DestroyCause {
    /// The metrics label: `destroy` or `emptied`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Emptied => "emptied",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A new session was first stored. Has a snapshot.
    Created,
    /// The session got a new id; [`SessionEvent::session`] is the new id's
    /// fingerprint. Has a snapshot.
    Rotated {
        /// Renewal or regeneration.
        cause: RotationCause,
        /// The old id's fingerprint.
        previous: Fingerprint,
    },
    /// A stored session was deleted by a commit.
    Destroyed {
        /// `destroy`/`reset`, or emptied.
        cause: DestroyCause,
    },
    /// A session was deleted by id (`SessionManager::delete_by_id`).
    Revoked,
    /// A load found the session past its idle or absolute timeout; it was
    /// deleted. Has a snapshot (the data it held).
    ExpiredOnLoad,
    /// A store operation on this session failed.
    StoreError {
        /// Which operation.
        operation: StoreOperation,
        /// The metrics `kind` label of the error (`unavailable`, `timeout`,
        /// `corrupt`, `backend`, `circuit_open`).
        kind: &'static str,
    },
}

/// One lifecycle event, as a listener receives it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionEvent<T> {
    /// What happened.
    pub kind: EventKind,
    /// Which session (never its id).
    pub session: Fingerprint,
    /// The session's data after the event, where there is one (see [`EventKind`]).
    pub snapshot: Option<T>,
    /// When, in milliseconds since the epoch, by the manager's clock.
    pub at_ms: u64,
}

/// Receives lifecycle events, one at a time, on the event thread.
///
/// Implemented for every `FnMut(SessionEvent<T>) + Send + 'static`. A
/// listener may block or be slow (events queue up, then are dropped and
/// counted) and may panic (caught and counted); requests never wait for it.
pub trait SessionListener<T>: Send + 'static {
    /// Handles one event.
    fn on_event(&mut self, event: SessionEvent<T>);
}

impl<T, F> SessionListener<T> for F
where
    F: FnMut(SessionEvent<T>) + Send + 'static,
{
    fn on_event(&mut self, event: SessionEvent<T>) {
        self(event);
    }
}

/// Counts of a manager's event delivery, from [`SessionManager::event_stats`](crate::SessionManager::event_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStats {
    /// Events the listener handled.
    pub delivered: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events whose listener call panicked.
    pub panicked: u64,
}

#[derive(Debug, Default)]
struct Counts {
    delivered: AtomicU64,
    dropped: AtomicU64,
    panicked: AtomicU64,
}

/// An event before it is typed: what the runtime knows at the hook.
pub(crate) struct RawEvent<'a> {
    pub(crate) kind: EventKind,
    pub(crate) session: Fingerprint,
    pub(crate) data: Option<&'a dyn Any>,
    pub(crate) at_ms: u64,
}

/// Where the runtime's hooks put events (type-erased: the runtime's
/// context does not know `T`).
pub(crate) trait Sink: Send + Sync + 'static {
    fn emit(&self, event: RawEvent<'_>);
    fn stats(&self) -> EventStats;
}

/// The sending end of one listener's queue.
pub(crate) struct Queue<T> {
    tx: SyncSender<SessionEvent<T>>,
    counts: Arc<Counts>,
}

impl<T: Clone + Send + 'static> Sink for Queue<T> {
    fn emit(&self, event: RawEvent<'_>) {
        let event = SessionEvent {
            kind: event.kind,
            session: event.session,
            snapshot: event.data.and_then(|d| d.downcast_ref::<T>()).cloned(),
            at_ms: event.at_ms,
        };
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::events_dropped();
            }
        }
    }

    fn stats(&self) -> EventStats {
        EventStats {
            delivered: self.counts.delivered.load(Ordering::Relaxed),
            dropped: self.counts.dropped.load(Ordering::Relaxed),
            panicked: self.counts.panicked.load(Ordering::Relaxed),
        }
    }
}

/// Starts the event thread for `listener`; it ends when the last manager
/// holding the queue is dropped.
pub(crate) fn spawn<T, L>(mut listener: L, capacity: usize) -> std::io::Result<Queue<T>>
where
    T: Clone + Send + 'static,
    L: SessionListener<T>,
{
    let (tx, rx) = mpsc::sync_channel::<SessionEvent<T>>(capacity.max(1));
    let counts = Arc::new(Counts::default());
    let thread_counts = Arc::clone(&counts);
    std::thread::Builder::new()
        .name("sessionkit-events".into())
        .spawn(move || {
            for event in rx {
                match catch_unwind(AssertUnwindSafe(|| listener.on_event(event))) {
                    Ok(()) => {
                        thread_counts.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        thread_counts.panicked.fetch_add(1, Ordering::Relaxed);
                        crate::metrics::listener_panicked();
                        tracing::error!(
                            "the session event listener panicked; the event is lost, later events are still delivered"
                        );
                    }
                }
            }
        })?;
    Ok(Queue { tx, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_the_start_of_the_redis_key_digest() {
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let digest = Sha256::digest(id.as_str().as_bytes());
        let full = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        let fp = id.fingerprint().to_string();
        assert_eq!(fp.len(), 12);
        assert!(full.starts_with(&fp));
        assert_eq!(
            format!("{:?}", id.fingerprint()),
            format!("Fingerprint({fp})")
        );
    }
}

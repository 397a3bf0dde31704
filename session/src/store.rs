//! The storage contract for store authors: what a backend must do to load,
//! write (conditionally), rotate and delete sessions, and the typed answers
//! that let the runtime stay correct when requests of one session interleave.
//!
//! A store implements [`SessionStore`] with plain `async` methods (or methods
//! returning `impl Future + Send`); the runtime uses it through
//! [`DynSessionStore`], the object-safe form every [`SessionStore`] gets for
//! free, so no store author writes a boxed future by hand.
//!
//! One capability is optional: the **principal index** ([`PrincipalIndex`])
//! that lists and revokes the sessions of one user. A store without it
//! answers `None` from [`SessionStore::principal_index`] (the default),
//! listing and revoking then answer [`StoreError::Unsupported`], and the
//! store ignores [`Write::principal`]; everything else works unchanged.
//!
//! A store that wraps another (a timeout, a circuit breaker, metrics) is a
//! [`StoreLayer`]: it says what it does around one operation, and every
//! operation of both traits is forwarded through it.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use crate::id::SessionId;
pub use crate::principal::{Principal, PrincipalWrite, Take};
pub use crate::record::{Fields, Meta, Record, FORMAT_VERSION};
pub(crate) use index::no_index;
pub use index::{DynPrincipalIndex, PrincipalIndex};
pub use layer::{Call, StoreLayer};

mod index;
mod layer;

/// A boxed store future, as [`DynSessionStore`] returns it.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What a store holds under an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Nothing (never stored, deleted, expired, or a rotation tombstone past
    /// its grace period).
    Absent,
    /// A session.
    Session(Record),
    /// The id was rotated less than a grace period ago: the session now
    /// lives under this id.
    Moved(SessionId),
}

/// The kind of a [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// A new session under a fresh, server-made id: write `meta` and `set`.
    /// Unconditional.
    Create,
    /// Change a live session in place: the write applies only if `id` holds a
    /// live session whose fields match `expect`.
    Update,
    /// Move a live session to the id `to`, applying the same change; the
    /// write applies only if `id` holds a live session whose fields match
    /// `expect`. The new record is the **stored** fields of `id` with the
    /// change applied (so a concurrent change to another field is kept).
    ///
    /// With `grace_ms > 0`, `id` becomes a tombstone for that long: loading or
    /// writing it answers `Moved(to)`, and deleting it also deletes `to`.
    /// With `grace_ms == 0` (`regenerate`, privilege changes), `id` is deleted
    /// and keeps no link to `to`.
    Rotate {
        /// The new id.
        to: SessionId,
        /// How long the old id forwards to the new one; 0 = not at all.
        grace_ms: u64,
        /// The complete fields of the session after the change, computed by
        /// the runtime from what it loaded. Stores that cannot copy `id` to
        /// `to` atomically (Redis Cluster: two hash slots) write this and
        /// check `loaded` instead.
        full: Vec<(&'static str, Bytes)>,
        /// Every field as this request loaded it (`None` = absent).
        loaded: Vec<(&'static str, Option<Bytes>)>,
    },
}

/// One conditional write, built by the runtime's commit plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The session written (for `Rotate`, the old id).
    pub id: SessionId,
    /// Create, update or rotate.
    pub kind: WriteKind,
    /// The time of the write (ms since the epoch).
    pub now: u64,
    /// The session's metadata after the write; `meta.last_access == now`.
    pub meta: Meta,
    /// Whether to store all of `meta`; when `false` only `last_access` is
    /// stored and the rest stays as stored (so a concurrent change of the
    /// idle timeout is not undone). Always `true` for `Create` and `Rotate`.
    pub meta_changed: bool,
    /// The TTL to give the record (ms, ≥ 1). For `Update` without
    /// `meta_changed`, stores only ever extend an existing TTL with it.
    pub ttl_ms: u64,
    /// Fields to write, by stored name.
    pub set: Vec<(&'static str, Bytes)>,
    /// Fields to delete, by stored name.
    pub remove: Vec<&'static str>,
    /// Fields that must still hold these bytes (`None` = absent) for the
    /// write to apply: the values a read-modify-write in this request was
    /// based on.
    pub expect: Vec<(&'static str, Option<Bytes>)>,
    /// What the write does to the session's principal, for stores that keep
    /// the principal index; `None` when the session has no principal before
    /// or after it (stores without an index ignore this).
    pub principal: Option<PrincipalWrite>,
}

/// A store's answer to a [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Applied.
    Done,
    /// Nothing applied: the session is gone (destroyed, revoked, regenerated
    /// away or expired).
    Gone,
    /// Nothing applied: the session was rotated to this id by a concurrent
    /// request, less than a grace period ago.
    Moved(SessionId),
    /// Nothing applied: a field in `expect` changed. The session as stored now.
    Conflict(Record),
}

/// A session backend, as its author writes it.
///
/// All ids reaching a store have passed [`SessionId`] validation. Stores
/// keep the [`Meta`] next to the fields, give every record the TTL of its
/// last write so abandoned sessions disappear by themselves, check every
/// condition of a [`Write`] in one atomic step, and report failures as
/// [`StoreError`]s; they never panic on bad data.
///
/// Listing and revoking the sessions of one user is a separate, optional
/// capability, [`PrincipalIndex`]: a store that keeps the index implements
/// it and returns itself from [`SessionStore::principal_index`].
///
/// Behaviour added around a store (timeouts, a circuit breaker, metrics) is
/// written as a [`StoreLayer`], which forwards every operation, the index's
/// included, through one method.
///
/// ```
/// use std::sync::Arc;
/// use sessionkit::store::DynSessionStore;
/// use sessionkit::MemoryStore;
/// // Any store can be used as a trait object through `DynSessionStore`.
/// let store: Arc<dyn DynSessionStore> = Arc::new(MemoryStore::new());
/// assert!(store.principal_index_dyn().is_some());
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// What the store holds under `id` at `now`. A pure read: loading never
    /// changes a record (the runtime refreshes the idle deadline with a
    /// [`Write`] when one is due).
    fn load(
        &self,
        id: &SessionId,
        now: u64,
    ) -> impl Future<Output = Result<Loaded, StoreError>> + Send;

    /// Applies `write` if its conditions hold, atomically.
    fn write(&self, write: &Write) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Deletes the session under `id`; if `id` is a rotation tombstone, the
    /// session it forwards to is deleted too. Deleting an absent session is
    /// not an error.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A short, stable name for this kind of store, the `store` label of
    /// sessionkit's metrics (`"memory"`, `"redis"`); never an address or a
    /// key. Layers return their inner store's.
    fn label(&self) -> &'static str {
        "custom"
    }

    /// The store's [`PrincipalIndex`], if it keeps one: a store that
    /// implements the index returns `Some(self)`. The default, `None`,
    /// makes listing and revoking a user's sessions answer
    /// [`StoreError::Unsupported`]; everything else works unchanged, and
    /// [`Write::principal`] can be ignored.
    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        None
    }
}

/// The object-safe form of [`SessionStore`], implemented for every store.
pub trait DynSessionStore: Send + Sync + 'static {
    /// [`SessionStore::load`], boxed.
    fn load_boxed<'a>(&'a self, id: &'a SessionId, now: u64) -> StoreFuture<'a, Loaded>;
    /// [`SessionStore::write`], boxed.
    fn write_boxed<'a>(&'a self, write: &'a Write) -> StoreFuture<'a, Written>;
    /// [`SessionStore::delete`], boxed.
    fn delete_boxed<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()>;
    /// [`SessionStore::label`].
    fn label_dyn(&self) -> &'static str;
    /// [`SessionStore::principal_index`].
    fn principal_index_dyn(&self) -> Option<&dyn DynPrincipalIndex>;
}

impl<S: SessionStore> DynSessionStore for S {
    fn load_boxed<'a>(&'a self, id: &'a SessionId, now: u64) -> StoreFuture<'a, Loaded> {
        Box::pin(self.load(id, now))
    }
    fn write_boxed<'a>(&'a self, write: &'a Write) -> StoreFuture<'a, Written> {
        Box::pin(self.write(write))
    }
    fn delete_boxed<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        Box::pin(self.delete(id))
    }
    fn label_dyn(&self) -> &'static str {
        self.label()
    }
    fn principal_index_dyn(&self) -> Option<&dyn DynPrincipalIndex> {
        self.principal_index()
    }
}

/// A store behind `dyn`: what `Arc<dyn DynSessionStore>` forwards to (as
/// the inner store of `Arc`'s [`StoreLayer`]).
impl SessionStore for dyn DynSessionStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.load_boxed(id, now).await
    }
    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.write_boxed(write).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.delete_boxed(id).await
    }
    fn label(&self) -> &'static str {
        self.label_dyn()
    }
    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        self.principal_index_dyn()
    }
}

/// Why a store operation failed.
///
/// Each variant either says what happened in its message or carries the
/// cause as [`source`](StdError::source), never both, so a logged error
/// chain names each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached (connection refused, pool exhausted, …).
    #[error("the session store is unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The backend did not answer in time.
    #[error(
        "the session store did not answer within {0:?}; check that it is running and reachable"
    )]
    Timeout(Duration),
    /// The backend answered with data the store cannot interpret.
    #[error("the session store returned something it cannot read: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("the session store failed")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
    /// The store does not offer this operation (e.g. a store without a
    /// principal index asked to list a user's sessions); the message says
    /// what to use instead.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Backend`].
    pub fn backend(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(err.into())
    }

    /// Wraps a connection error as [`StoreError::Unavailable`].
    pub fn unavailable(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unavailable(err.into())
    }
}

/// Applies the field part of a write to `fields` (stores that keep fields
/// in one value use it).
pub fn apply_change(fields: &mut Fields, write: &Write) {
    for name in &write.remove {
        fields.remove(name);
    }
    for (name, value) in &write.set {
        fields.insert(Bytes::from_static(name.as_bytes()), value.clone());
    }
}

/// Whether `fields` hold what `expect` says (the check of a conditional write).
#[must_use]
pub fn expectations_hold(fields: &Fields, expect: &[(&'static str, Option<Bytes>)]) -> bool {
    expect
        .iter()
        .all(|(name, want)| fields.get(name) == want.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_compare_bytes_and_absence() {
        let mut fields = Fields::default();
        fields.insert(Bytes::from_static(b"a"), Bytes::from_static(b"1"));
        assert!(expectations_hold(
            &fields,
            &[("a", Some(Bytes::from_static(b"1"))), ("b", None)]
        ));
        assert!(!expectations_hold(&fields, &[("a", None)]));
        assert!(!expectations_hold(
            &fields,
            &[("b", Some(Bytes::from_static(b"1")))]
        ));
    }

    #[test]
    fn errors_report_each_cause_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = StoreError::unavailable(inner);
        assert!(!error.to_string().contains("refused"));
        assert!(StdError::source(&error).is_some_and(|s| s.to_string().contains("refused")));
    }
}

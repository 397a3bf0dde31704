//! The storage contract for store authors: what a backend must do to load,
//! write (conditionally), rotate and delete sessions, and the typed answers
//! that let the runtime stay correct when requests of one session interleave.
//!
//! A store implements [`SessionStore`] with plain `async` methods (or methods
//! returning `impl Future + Send`); the runtime uses it through
//! [`DynSessionStore`], the object-safe form every [`SessionStore`] gets for
//! free, so no store author writes a boxed future by hand.
//!
//! Two methods are optional: the **principal index**
//! ([`SessionStore::principal_sessions`],
//! [`SessionStore::revoke_principal_sessions`]) that lists and revokes the
//! sessions of one user. Their defaults answer
//! [`StoreError::Unsupported`], and a store without an index ignores
//! [`Write::principal`]; everything else works unchanged.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::id::SessionId;
use crate::principal::SessionHandle;
pub use crate::principal::{Principal, PrincipalWrite, Take};
pub use crate::record::{Fields, Meta, Record, FORMAT_VERSION};

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
/// Behaviour added around a store (timeouts, a circuit breaker, metrics) is
/// written as a wrapper implementing this trait.
///
/// ```
/// use std::sync::Arc;
/// use sessionkit::store::DynSessionStore;
/// use sessionkit::MemoryStore;
/// // Any store can be used as a trait object through `DynSessionStore`.
/// let store: Arc<dyn DynSessionStore> = Arc::new(MemoryStore::new());
/// # let _ = store;
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
    /// key. Wrappers return their inner store's.
    fn label(&self) -> &'static str {
        "custom"
    }

    /// The sessions indexed under `principal` that the store still holds,
    /// with their records (not checked for expiry or owner: the runtime
    /// does that).
    ///
    /// # The index contract
    ///
    /// A store that keeps the index maintains it in [`SessionStore::write`]
    /// as [`Write::principal`] says, so that **every live session with
    /// principal P is listed under P whenever a listing or a revocation can
    /// observe it**: it is indexed under P before (or atomically with) the
    /// write that gives it P or moves it to a new id. A rotation with
    /// [`PrincipalWrite::Keep`] applies only while the old id is indexed and
    /// not being revoked ([`SessionStore::revoke_principal_sessions`]);
    /// otherwise it answers [`Written::Gone`].
    ///
    /// An entry is removed only by a party that knows its session is gone:
    /// the delete or revocation of that session, a rotation (the old id's
    /// entry is kept for the grace period at most), or the entry's own
    /// deadline, which the session cannot outlive. A listing never removes
    /// an entry whose record it did not find: that session may be a login
    /// or a rotation whose record step has not run yet. So the index holds
    /// at most the principal's live sessions, their tombstones within the
    /// grace period, and sessions that ended without a delete (expired, or
    /// whose write failed) until their entries' deadlines.
    ///
    /// The default answers [`StoreError::Unsupported`].
    fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> impl Future<Output = Result<Vec<(SessionHandle, Record)>, StoreError>> + Send {
        let _ = (principal, now);
        async { Err(StoreError::Unsupported(NO_INDEX)) }
    }

    /// Revokes the sessions `take` names that still belong to `principal`
    /// and returns how many live sessions it deleted (a rotation tombstone
    /// and the session it forwards to count once).
    ///
    /// # The revocation contract
    ///
    /// - **Wins over rotations**: once a session is being revoked, a
    ///   [`WriteKind::Rotate`] of it answers [`Written::Gone`], so no taken
    ///   session moves to an id the revocation does not know; after `Ok`,
    ///   none of the sessions it covered is stored any more, under any of
    ///   its ids.
    /// - **Follows tombstones, except into the kept session**: a handle
    ///   whose id was rotated less than a grace period ago is followed to
    ///   the session it forwards to, but with [`Take::AllExcept`] never into
    ///   the kept session (its own old ids are not "other sessions").
    /// - **Retry-safe**: if it fails partway, every session not yet deleted
    ///   is still listed by [`SessionStore::principal_sessions`], and the
    ///   same call again finishes the job.
    ///
    /// The default answers [`StoreError::Unsupported`].
    fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = (principal, take, now);
        async { Err(StoreError::Unsupported(NO_INDEX)) }
    }
}

/// Why the default index methods fail.
const NO_INDEX: &str = "this session store keeps no principal index, so sessions cannot be listed or revoked per user: use MemoryStore or RedisStore, or implement SessionStore::principal_sessions and revoke_principal_sessions (a wrapping store must forward them)";

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

    /// [`SessionStore::principal_sessions`], boxed.
    fn principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        now: u64,
    ) -> StoreFuture<'a, Vec<(SessionHandle, Record)>>;
    /// [`SessionStore::revoke_principal_sessions`], boxed.
    fn revoke_principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        take: Take<'a>,
        now: u64,
    ) -> StoreFuture<'a, usize>;
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

    fn principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        now: u64,
    ) -> StoreFuture<'a, Vec<(SessionHandle, Record)>> {
        Box::pin(self.principal_sessions(principal, now))
    }
    fn revoke_principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        take: Take<'a>,
        now: u64,
    ) -> StoreFuture<'a, usize> {
        Box::pin(self.revoke_principal_sessions(principal, take, now))
    }
}

impl SessionStore for Arc<dyn DynSessionStore> {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        (**self).load_boxed(id, now).await
    }
    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        (**self).write_boxed(write).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        (**self).delete_boxed(id).await
    }
    fn label(&self) -> &'static str {
        (**self).label_dyn()
    }

    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        (**self).principal_sessions_boxed(principal, now).await
    }
    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        (**self)
            .revoke_principal_sessions_boxed(principal, take, now)
            .await
    }
}

impl<S: SessionStore> SessionStore for Arc<S> {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        (**self).load(id, now).await
    }
    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        (**self).write(write).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        (**self).delete(id).await
    }
    fn label(&self) -> &'static str {
        (**self).label()
    }

    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        (**self).principal_sessions(principal, now).await
    }
    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        (**self)
            .revoke_principal_sessions(principal, take, now)
            .await
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

/// `SessionStore` for a store wrapper `$wrapper<S>` (field `inner: S`)
/// that passes every operation's future through `self.$wrap(..)` (a
/// timeout, a circuit breaker): the operations of the trait, the principal
/// index's included, each forwarded the same way, and `label` unchanged.
macro_rules! wrapping_store {
    ($wrapper:ident, $wrap:ident) => {
        impl<S: $crate::store::SessionStore> $crate::store::SessionStore for $wrapper<S> {
            async fn load(
                &self,
                id: &$crate::id::SessionId,
                now: u64,
            ) -> Result<$crate::store::Loaded, $crate::store::StoreError> {
                self.$wrap(self.inner.load(id, now)).await
            }

            async fn write(
                &self,
                write: &$crate::store::Write,
            ) -> Result<$crate::store::Written, $crate::store::StoreError> {
                self.$wrap(self.inner.write(write)).await
            }

            async fn delete(
                &self,
                id: &$crate::id::SessionId,
            ) -> Result<(), $crate::store::StoreError> {
                self.$wrap(self.inner.delete(id)).await
            }

            fn label(&self) -> &'static str {
                self.inner.label()
            }

            async fn principal_sessions(
                &self,
                principal: &$crate::principal::Principal,
                now: u64,
            ) -> Result<
                Vec<($crate::principal::SessionHandle, $crate::record::Record)>,
                $crate::store::StoreError,
            > {
                self.$wrap(self.inner.principal_sessions(principal, now))
                    .await
            }

            async fn revoke_principal_sessions(
                &self,
                principal: &$crate::principal::Principal,
                take: $crate::principal::Take<'_>,
                now: u64,
            ) -> Result<usize, $crate::store::StoreError> {
                self.$wrap(self.inner.revoke_principal_sessions(principal, take, now))
                    .await
            }
        }
    };
}
pub(crate) use wrapping_store;

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

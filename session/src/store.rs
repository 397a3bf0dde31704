//! The storage contract: how the runtime loads, saves, rotates and deletes
//! sessions in any backend.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::id::SessionId;
use crate::record::{Meta, Record, Update};

/// The future every [`SessionStore`] method returns (boxed so the trait is object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A session backend.
///
/// All ids reaching a store have passed [`SessionId`] validation. Stores keep
/// the [`Meta`] next to the fields, set a TTL on every write (see
/// [`Update::ttl_ms`]) so abandoned sessions disappear by themselves, and
/// report failures as [`StoreError`]s; they never panic on bad data.
///
/// Behaviour added around a store (caching, metrics, fault injection) is
/// written as a wrapper implementing this trait.
///
/// ```
/// use std::sync::Arc;
/// use sessionkit::{MemoryStore, SessionStore};
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// # let _ = store;
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a session and refreshes its idle TTL (`last_access = now`) in the
    /// same round trip. Returns the record **as it was before** the refresh, so
    /// the runtime can still see that it had expired. `Ok(None)` when absent.
    fn load<'a>(&'a self, id: &'a SessionId, now: u64) -> StoreFuture<'a, Option<Record>>;

    /// Writes `update` under `id` (a partial update unless `update.replace`).
    /// A partial update for an id the store no longer holds (destroyed by a
    /// concurrent request, or expired) writes nothing, so a logged-out session
    /// never comes back as a fragment.
    fn save<'a>(&'a self, id: &'a SessionId, update: &'a Update) -> StoreFuture<'a, ()>;

    /// Moves a session to a new id: writes `update` (always complete) under
    /// `new` and deletes `old`, so no readable copy stays under `old`.
    fn rotate<'a>(
        &'a self,
        old: &'a SessionId,
        new: &'a SessionId,
        update: &'a Update,
    ) -> StoreFuture<'a, ()>;

    /// Deletes the session; deleting an absent session is not an error.
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()>;

    /// Replaces the stored metadata and TTL without touching fields.
    fn touch<'a>(&'a self, id: &'a SessionId, meta: &'a Meta) -> StoreFuture<'a, ()>;
}

impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    fn load<'a>(&'a self, id: &'a SessionId, now: u64) -> StoreFuture<'a, Option<Record>> {
        (**self).load(id, now)
    }
    fn save<'a>(&'a self, id: &'a SessionId, update: &'a Update) -> StoreFuture<'a, ()> {
        (**self).save(id, update)
    }
    fn rotate<'a>(
        &'a self,
        old: &'a SessionId,
        new: &'a SessionId,
        update: &'a Update,
    ) -> StoreFuture<'a, ()> {
        (**self).rotate(old, new, update)
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        (**self).delete(id)
    }
    fn touch<'a>(&'a self, id: &'a SessionId, meta: &'a Meta) -> StoreFuture<'a, ()> {
        (**self).touch(id, meta)
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached (connection refused, pool exhausted, …).
    #[error("the session store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The backend did not answer in time.
    #[error(
        "the session store did not answer within {0:?}; check that it is running and reachable"
    )]
    Timeout(Duration),
    /// The backend answered with data the store cannot interpret as a session.
    #[error("the session store returned a record it cannot read: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("the session store failed: {0}")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
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

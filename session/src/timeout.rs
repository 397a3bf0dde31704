//! A wrapper that bounds every operation of any store, so a slow or hung
//! backend turns into a prompt [`StoreError::Timeout`] instead of a hung request.

use std::future::Future;
use std::time::Duration;

use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::Record;
use crate::store::{Loaded, SessionStore, StoreError, Write, Written};

/// Wraps a store and fails any operation that takes longer than `limit`
/// with [`StoreError::Timeout`].
///
/// The Redis store has its own connect/command timeouts; wrap custom stores
/// (or any store, as a last line of defence) with this. Needs a tokio runtime
/// with timers enabled (actix-web's has them).
///
/// ```
/// use std::time::Duration;
/// use sessionkit::{MemoryStore, SessionManager, TimeoutStore};
/// # #[derive(Default)] struct Data;
/// # impl sessionkit::SessionData for Data {
/// #   const FIELDS: &'static [sessionkit::FieldInfo] = &[];
/// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), sessionkit::EncodeError> { Err(sessionkit::EncodeError::no_field(i)) }
/// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), sessionkit::DecodeError> { Err(sessionkit::DecodeError::no_field(i)) }
/// #   fn reset_field(&mut self, _: usize) {}
/// # }
/// let store = TimeoutStore::new(MemoryStore::new(), Duration::from_millis(500));
/// let manager = SessionManager::<Data>::new(store);
/// # let _ = manager;
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutStore<S> {
    inner: S,
    limit: Duration,
}

impl<S: SessionStore> TimeoutStore<S> {
    /// Bounds every operation of `inner` by `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn bound<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.limit, op)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.limit)))
    }
}

impl<S: SessionStore> SessionStore for TimeoutStore<S> {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.bound(self.inner.load(id, now)).await
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.bound(self.inner.write(write)).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.bound(self.inner.delete(id)).await
    }

    fn label(&self) -> &'static str {
        self.inner.label()
    }

    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        self.bound(self.inner.principal_sessions(principal, now))
            .await
    }

    async fn take_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
    ) -> Result<Vec<SessionHandle>, StoreError> {
        self.bound(self.inner.take_principal_sessions(principal, take))
            .await
    }

    async fn delete_principal_sessions(
        &self,
        principal: &Principal,
        sessions: &[SessionHandle],
    ) -> Result<usize, StoreError> {
        self.bound(self.inner.delete_principal_sessions(principal, sessions))
            .await
    }
}

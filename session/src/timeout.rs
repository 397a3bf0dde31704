//! A wrapper that bounds every operation of any store, so a slow or hung
//! backend turns into a prompt [`StoreError::Timeout`] instead of a hung request.

use std::future::Future;
use std::time::Duration;

use crate::store::{Call, SessionStore, StoreError, StoreLayer};

/// Wraps a store and fails any operation that takes longer than `limit`
/// with [`StoreError::Timeout`].
///
/// The Redis store has its own connect/command timeouts; wrap custom stores
/// (or any store, as a last line of defence) with this. Needs a tokio runtime
/// with timers enabled (actix-web's has them).
///
/// ```
/// use std::time::Duration;
/// use sessionkit::{MemoryStore, SessionManager};
/// use sessionkit::timeout::TimeoutStore;
/// # #[derive(Default)] struct Data;
/// # impl sessionkit::SessionData for Data {
/// #   const FIELDS: &'static [sessionkit::codec::FieldInfo] = &[];
/// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), sessionkit::codec::EncodeError> { Err(sessionkit::codec::EncodeError::no_field(i)) }
/// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), sessionkit::codec::DecodeError> { Err(sessionkit::codec::DecodeError::no_field(i)) }
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
}

impl<S: SessionStore> StoreLayer for TimeoutStore<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn around<'a, T: Send + 'a>(
        &'a self,
        _call: Call<'a>,
        operation: impl Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.limit, operation)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.limit)))
    }
}

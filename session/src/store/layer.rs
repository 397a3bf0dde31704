//! Store layers: behaviour around every operation of an inner store (a
//! timeout, a circuit breaker, metrics), written once as
//! [`StoreLayer::around`] and forwarded for every method of
//! [`SessionStore`] and [`PrincipalIndex`] by the blanket impls here.

use std::future::Future;
use std::sync::Arc;

use super::index::no_index;
use super::{DynPrincipalIndex, Loaded, PrincipalIndex, SessionStore, StoreError, Write, Written};
use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::Record;

/// The operation a [`StoreLayer`] is wrapping, with what identifies it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`SessionStore::load`] of this id.
    Load(&'a SessionId),
    /// [`SessionStore::write`].
    Write(&'a Write),
    /// [`SessionStore::delete`] of this id.
    Delete(&'a SessionId),
    /// [`PrincipalIndex::principal_sessions`] of this principal.
    PrincipalSessions(&'a Principal),
    /// [`PrincipalIndex::revoke_principal_sessions`] of this principal.
    RevokePrincipalSessions(&'a Principal),
}

/// A store made of an inner store and behaviour around each of its
/// operations.
///
/// Implementing it makes the type a [`SessionStore`] whose every operation
/// is `around(call, inner's operation)`, and whose
/// [`principal_index`](SessionStore::principal_index) is the inner store's
/// index wrapped the same way (or `None`, as the inner store says). The
/// layer restates no method of the store traits.
///
/// ```
/// use std::future::Future;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use sessionkit::store::{Call, StoreError, StoreLayer};
/// use sessionkit::MemoryStore;
///
/// /// Counts the writes of any store.
/// struct CountWrites<S> { inner: S, writes: AtomicUsize }
///
/// impl<S: sessionkit::store::SessionStore> StoreLayer for CountWrites<S> {
///     type Inner = S;
///     fn inner(&self) -> &S { &self.inner }
///     fn around<'a, T: Send + 'a>(
///         &'a self,
///         call: Call<'a>,
///         operation: impl Future<Output = Result<T, StoreError>> + Send + 'a,
///     ) -> impl Future<Output = Result<T, StoreError>> + Send + 'a {
///         if matches!(call, Call::Write(_)) {
///             self.writes.fetch_add(1, Ordering::Relaxed);
///         }
///         operation
///     }
/// }
///
/// # #[derive(sessionkit::SessionData, Default)] struct Cart { items: u32 }
/// let store = CountWrites { inner: MemoryStore::new(), writes: AtomicUsize::new(0) };
/// // A layer is a store, with the inner store's principal index.
/// assert!(sessionkit::store::SessionStore::principal_index(&store).is_some());
/// let manager = sessionkit::SessionManager::<Cart>::new(store);
/// # let _ = manager;
/// ```
pub trait StoreLayer: Send + Sync + 'static {
    /// The wrapped store.
    type Inner: SessionStore + ?Sized;

    /// The wrapped store.
    fn inner(&self) -> &Self::Inner;

    /// Runs `operation` (the inner store's answer to `call`) with this
    /// layer's behaviour around it.
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        operation: impl Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'a;
}

impl<L: StoreLayer> SessionStore for L {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.around(Call::Load(id), self.inner().load(id, now))
            .await
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.around(Call::Write(write), self.inner().write(write))
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.around(Call::Delete(id), self.inner().delete(id)).await
    }

    fn label(&self) -> &'static str {
        self.inner().label()
    }

    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        self.inner()
            .principal_index()
            .map(|_| self as &dyn DynPrincipalIndex)
    }
}

impl<L: StoreLayer> PrincipalIndex for L {
    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        let inner = self.inner().principal_index();
        self.around(Call::PrincipalSessions(principal), async move {
            match inner {
                Some(index) => index.principal_sessions_boxed(principal, now).await,
                None => Err(no_index()),
            }
        })
        .await
    }

    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        let inner = self.inner().principal_index();
        self.around(Call::RevokePrincipalSessions(principal), async move {
            match inner {
                Some(index) => {
                    index
                        .revoke_principal_sessions_boxed(principal, take, now)
                        .await
                }
                None => Err(no_index()),
            }
        })
        .await
    }
}

/// A shared store is the store itself: `Arc<S>` and `Arc<dyn
/// DynSessionStore>` add nothing around its operations.
impl<S: SessionStore + ?Sized> StoreLayer for Arc<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        self
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        _call: Call<'a>,
        operation: impl Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'a {
        operation
    }
}

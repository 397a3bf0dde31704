//! The principal index, an optional capability of a store: listing and
//! revoking the sessions of one user (principal).

use std::future::Future;

use super::{StoreError, StoreFuture};
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::Record;

/// Why listing or revoking fails on a store that keeps no index.
pub(crate) const NO_INDEX: &str = "this session store keeps no principal index, so sessions cannot be listed or revoked per user: use MemoryStore, RedisStore or PostgresStore, or implement sessionkit::store::PrincipalIndex for the store and return it from SessionStore::principal_index";

/// The [`StoreError::Unsupported`] a store without an index answers.
pub(crate) fn no_index() -> StoreError {
    StoreError::Unsupported(NO_INDEX)
}

/// Lists and revokes the sessions of one principal, for stores that keep an
/// index of them.
///
/// A store implements this trait and returns itself from
/// [`SessionStore::principal_index`](super::SessionStore::principal_index);
/// it then maintains the index in its writes as
/// [`Write::principal`](super::Write::principal) says.
///
/// # The index contract
///
/// **Every live session with principal P is listed under P whenever a
/// listing or a revocation can observe it**: it is indexed under P before
/// (or atomically with) the write that gives it P or moves it to a new id.
/// A rotation with [`PrincipalWrite::Keep`](super::PrincipalWrite::Keep)
/// applies only while the old id is indexed and not being revoked;
/// otherwise it answers [`Written::Gone`](super::Written::Gone).
///
/// An entry is removed only by a party that knows its session is gone: the
/// delete or revocation of that session, a rotation (the old id's entry is
/// kept for the grace period at most), or the entry's own deadline, which
/// the session cannot outlive. A listing never removes an entry whose
/// record it did not find: that session may be a login or a rotation whose
/// record step has not run yet. So the index holds at most the principal's
/// live sessions, their tombstones within the grace period, and sessions
/// that ended without a delete (expired, or whose write failed) until their
/// entries' deadlines.
///
/// # The revocation contract
///
/// - **Wins over rotations**: once a session is being revoked, a
///   [`WriteKind::Rotate`](super::WriteKind::Rotate) of it answers
///   [`Written::Gone`](super::Written::Gone), so no taken session moves to
///   an id the revocation does not know; after `Ok`, none of the sessions
///   it covered is stored any more, under any of its ids.
/// - **Follows tombstones, except into the kept session**: a handle whose
///   id was rotated less than a grace period ago is followed to the session
///   it forwards to, but with [`Take::AllExcept`] never into the kept
///   session (its own old ids are not "other sessions").
/// - **Retry-safe**: if it fails partway, every session not yet deleted is
///   still listed by [`PrincipalIndex::principal_sessions`], and the same
///   call again finishes the job.
///
/// ```
/// use sessionkit::store::{Principal, SessionStore};
/// use sessionkit::MemoryStore;
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// let index = store.principal_index().expect("the memory store keeps the index");
/// let user = Principal::of(&42u64).expect("a principal");
/// assert!(index.principal_sessions_boxed(&user, 0).await?.is_empty());
/// # Ok::<(), sessionkit::store::StoreError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait PrincipalIndex: Send + Sync + 'static {
    /// The sessions indexed under `principal` that the store still holds,
    /// with their records (not checked for expiry or owner: the runtime
    /// does that).
    fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> impl Future<Output = Result<Vec<(SessionHandle, Record)>, StoreError>> + Send;

    /// Revokes the sessions `take` names that still belong to `principal`
    /// and returns how many live sessions it deleted (a rotation tombstone
    /// and the session it forwards to count once).
    fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The object-safe form of [`PrincipalIndex`], implemented for every index.
pub trait DynPrincipalIndex: Send + Sync {
    /// [`PrincipalIndex::principal_sessions`], boxed.
    fn principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        now: u64,
    ) -> StoreFuture<'a, Vec<(SessionHandle, Record)>>;
    /// [`PrincipalIndex::revoke_principal_sessions`], boxed.
    fn revoke_principal_sessions_boxed<'a>(
        &'a self,
        principal: &'a Principal,
        take: Take<'a>,
        now: u64,
    ) -> StoreFuture<'a, usize>;
}

impl<I: PrincipalIndex> DynPrincipalIndex for I {
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

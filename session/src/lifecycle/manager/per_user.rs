//! The manager's sessions-per-user API: list a principal's sessions,
//! revoke one, all, or all but the current one (the store I/O is in
//! `revocation.rs`, the guarantee in `principal.rs`).

use super::SessionManager;
use crate::data::SessionData;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, SessionInfo, Take, ToPrincipalKey};
use crate::revocation;

impl<T: SessionData> SessionManager<T> {
    /// The live sessions of `principal` (a value of the principal field,
    /// e.g. the user id), oldest first, each with a snapshot of its data;
    /// `current` marks the caller's own session. Entries of sessions that
    /// expired, were deleted or now belong to someone else are dropped from
    /// the index as a side effect.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use sessionkit::{MemoryStore, SessionData, SessionManager};
    ///
    /// #[derive(SessionData, Default, Clone, Serialize, Deserialize)]
    /// struct Account {
    ///     #[session(principal)]
    ///     user_id: Option<u64>,
    ///     device: String,
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::<Account>::new(MemoryStore::new());
    /// for device in ["phone", "laptop"] {
    ///     let session = manager.create()?;
    ///     session.set_user_id(Some(7));
    ///     session.set_device(device.into());
    ///     session.save().await?;
    /// }
    /// let sessions = manager.list_sessions(&7u64, None).await?;
    /// assert_eq!(sessions.len(), 2);
    /// assert_eq!(manager.revoke_all_sessions(&7u64).await?, 2);
    /// assert!(manager.list_sessions(&7u64, None).await?.is_empty());
    /// # Ok::<(), sessionkit::SessionError>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails or keeps no principal
    /// index ([`StoreError::Unsupported`](crate::store::StoreError::Unsupported)).
    pub async fn list_sessions<K: ToPrincipalKey + ?Sized>(
        &self,
        principal: &K,
        current: Option<&SessionId>,
    ) -> Result<Vec<SessionInfo<T>>, SessionError> {
        let Some(principal) = Principal::of(principal) else {
            return Ok(Vec::new());
        };
        let current = current.map(SessionHandle::of);
        let now = self.ctx.clock.now_ms();
        let mut found = revocation::live_sessions::<T>(&self.ctx, &principal, now).await?;
        found.sort_by_key(|(handle, record, _)| (record.meta.created_at, handle.clone()));
        Ok(found
            .into_iter()
            .map(|(handle, record, data)| SessionInfo {
                current: current.as_ref() == Some(&handle),
                handle,
                created_at: record.meta.created_at,
                last_access: record.meta.last_access,
                expires_at: record.meta.expires_at(),
                data,
            })
            .collect())
    }

    /// Revokes one session of `principal` by its handle; `Ok(false)` when
    /// the handle names no live session of `principal` (another user's
    /// session, an expired one, or an old handle of a session whose id has
    /// rotated since it was listed). Revocation is immediate: the next
    /// request with its id gets a fresh, anonymous session; see the
    /// module's guarantee for requests in flight.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn revoke_session<K: ToPrincipalKey + ?Sized>(
        &self,
        principal: &K,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        let Some(principal) = Principal::of(principal) else {
            return Ok(false);
        };
        let handles = std::slice::from_ref(handle);
        Ok(revocation::revoke(&self.ctx, &principal, Take::These(handles)).await? > 0)
    }

    /// Revokes every session of `principal`, the caller's own included, and
    /// returns how many were live. After it returns, none of them is served
    /// again (see the module's guarantee).
    ///
    /// # Errors
    /// [`SessionError::Store`]; some sessions may have been revoked then.
    pub async fn revoke_all_sessions<K: ToPrincipalKey + ?Sized>(
        &self,
        principal: &K,
    ) -> Result<usize, SessionError> {
        let Some(principal) = Principal::of(principal) else {
            return Ok(0);
        };
        revocation::revoke(&self.ctx, &principal, Take::All).await
    }

    /// Revokes every session of `principal` except `current` ("log out
    /// everywhere else") and returns how many were revoked. Pass the id the
    /// request loaded (`session.id()` before any `regenerate` in the same
    /// request).
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn revoke_other_sessions<K: ToPrincipalKey + ?Sized>(
        &self,
        principal: &K,
        current: &SessionId,
    ) -> Result<usize, SessionError> {
        let Some(principal) = Principal::of(principal) else {
            return Ok(0);
        };
        let keep = SessionHandle::of(current);
        revocation::revoke(&self.ctx, &principal, Take::AllExcept(&keep)).await
    }
}

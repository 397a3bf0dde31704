//! The memory store's principal index: which sessions each principal has.
//!
//! One lock guards it. Writes that change what it holds take the lock and
//! keep it while they write the session, so for every other index
//! operation the two happen at once. The table tells the index about every
//! entry it drops (expired, evicted, deleted) from under a shard lock, maybe
//! inside an operation made while the index lock is held, so that report
//! never waits for the lock: when it is taken, the dropped key is queued
//! and forgotten by the next holder.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use super::key::Key;
use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, Take};

/// The index and the queue of keys the table dropped while it was locked.
#[derive(Default)]
pub(crate) struct PrincipalIndex {
    state: Mutex<State>,
    dropped: Mutex<Vec<Key>>,
    /// Something was ever indexed: until then the listener has nothing to do.
    used: AtomicBool,
}

/// What the index holds.
#[derive(Default)]
pub(crate) struct State {
    /// The handles of each principal's sessions.
    members: HashMap<Principal, HashSet<SessionHandle>>,
    /// Every indexed session: its id and its principal. Kept after a take
    /// (until the session is gone), so revocation can still reach it.
    sessions: HashMap<SessionHandle, (SessionId, Principal)>,
    /// The handle of each indexed session's key, so a dropped entry is found
    /// without hashing its id.
    handles: HashMap<Key, SessionHandle>,
}

impl PrincipalIndex {
    /// The index, locked, with the keys the table dropped meanwhile forgotten.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is a few map operations with no panic path between
        // them; a poisoned lock is still consistent.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped =
            std::mem::take(&mut *self.dropped.lock().unwrap_or_else(PoisonError::into_inner));
        for key in &dropped {
            state.forget_key(key);
        }
        state
    }

    /// The table dropped `key`'s entry (expired, evicted or deleted).
    pub(crate) fn removed(&self, key: &Key) {
        if !self.used.load(Ordering::Relaxed) {
            return;
        }
        match self.state.try_lock() {
            Ok(mut state) => state.forget_key(key),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().forget_key(key),
            Err(TryLockError::WouldBlock) => self
                .dropped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(key.clone()),
        }
    }

    fn mark_used(&self) {
        self.used.store(true, Ordering::Relaxed);
    }
}

impl State {
    /// Indexes `id` under `principal` (moving it from another principal).
    pub(crate) fn insert(&mut self, principal: Principal, id: SessionId) {
        let handle = SessionHandle::of(&id);
        if let Some((_, old)) = self
            .sessions
            .insert(handle.clone(), (id.clone(), principal.clone()))
        {
            if old != principal {
                self.remove_member(&old, &handle);
            }
        }
        self.members
            .entry(principal)
            .or_default()
            .insert(handle.clone());
        self.handles.insert(Key::of(&id), handle);
    }

    /// Forgets `id` entirely.
    pub(crate) fn forget_id(&mut self, id: &SessionId) {
        self.forget_key(&Key::of(id));
    }

    /// Forgets the session under `key` entirely.
    pub(crate) fn forget_key(&mut self, key: &Key) {
        let Some(handle) = self.handles.remove(key) else {
            return;
        };
        if let Some((_, principal)) = self.sessions.remove(&handle) {
            self.remove_member(&principal, &handle);
        }
    }

    /// Takes `id` out of its principal's entries (the session stays known).
    pub(crate) fn unlist_id(&mut self, id: &SessionId) {
        let Some(handle) = self.handles.get(&Key::of(id)).cloned() else {
            return;
        };
        if let Some((_, principal)) = self.sessions.get(&handle).cloned() {
            self.remove_member(&principal, &handle);
        }
    }

    /// Takes `handle` out of `principal`'s entries (the session stays known).
    pub(crate) fn remove_member(&mut self, principal: &Principal, handle: &SessionHandle) {
        if let Some(members) = self.members.get_mut(principal) {
            members.remove(handle);
            if members.is_empty() {
                self.members.remove(principal);
            }
        }
    }

    pub(crate) fn is_member(&self, principal: &Principal, handle: &SessionHandle) -> bool {
        self.members
            .get(principal)
            .is_some_and(|members| members.contains(handle))
    }

    /// `principal`'s entries with their ids.
    pub(crate) fn members<'a>(
        &'a self,
        principal: &Principal,
    ) -> impl Iterator<Item = (&'a SessionHandle, &'a SessionId)> + 'a {
        self.members
            .get(principal)
            .into_iter()
            .flatten()
            .filter_map(|handle| self.sessions.get(handle).map(|(id, _)| (handle, id)))
    }

    /// The id of the session `handle` names, if it belongs to `principal`.
    pub(crate) fn owned(
        &self,
        principal: &Principal,
        handle: &SessionHandle,
    ) -> Option<&SessionId> {
        self.sessions
            .get(handle)
            .filter(|(_, owner)| owner == principal)
            .map(|(id, _)| id)
    }

    /// Removes the entries `take` names and returns their handles.
    pub(crate) fn take(&mut self, principal: &Principal, take: Take<'_>) -> Vec<SessionHandle> {
        let Some(members) = self.members.get_mut(principal) else {
            return Vec::new();
        };
        let taken: Vec<SessionHandle> = match take {
            Take::All => members.drain().collect(),
            Take::AllExcept(keep) => {
                let taken = members.iter().filter(|h| *h != keep).cloned().collect();
                members.retain(|h| h == keep);
                taken
            }
            Take::These(these) => these
                .iter()
                .filter(|h| members.remove(*h))
                .cloned()
                .collect(),
        };
        if members.is_empty() {
            self.members.remove(principal);
        }
        taken
    }

    /// Removes all of `principal`'s entries but those in `keep` and returns
    /// their handles.
    pub(crate) fn take_all_except(
        &mut self,
        principal: &Principal,
        keep: &[SessionHandle],
    ) -> Vec<SessionHandle> {
        let Some(members) = self.members.get_mut(principal) else {
            return Vec::new();
        };
        let taken: Vec<SessionHandle> = members
            .iter()
            .filter(|h| !keep.contains(h))
            .cloned()
            .collect();
        members.retain(|h| keep.contains(h));
        if members.is_empty() {
            self.members.remove(principal);
        }
        taken
    }

    /// The id of an indexed (or taken, not yet gone) session.
    pub(crate) fn id_of(&self, handle: &SessionHandle) -> Option<&SessionId> {
        self.sessions.get(handle).map(|(id, _)| id)
    }

    /// How many sessions are indexed.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }
}

impl PrincipalIndex {
    /// [`PrincipalIndex::lock`] for a write that indexes something.
    pub(crate) fn lock_for_insert(&self) -> MutexGuard<'_, State> {
        self.mark_used();
        self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("memory-index-test-{n:04}")).unwrap()
    }

    fn p(key: &str) -> Principal {
        Principal::of(key).unwrap()
    }

    #[test]
    fn insert_move_take_forget() {
        let index = PrincipalIndex::default();
        let mut state = index.lock_for_insert();
        state.insert(p("a"), id(1));
        state.insert(p("a"), id(2));
        state.insert(p("b"), id(3));
        assert_eq!(state.members(&p("a")).count(), 2);
        // A session that takes another principal moves.
        state.insert(p("b"), id(2));
        assert_eq!(state.members(&p("a")).count(), 1);
        assert_eq!(state.members(&p("b")).count(), 2);
        assert!(state.owned(&p("a"), &SessionHandle::of(&id(2))).is_none());
        // Take all but one; the taken stay known for revocation.
        let keep = SessionHandle::of(&id(3));
        assert_eq!(
            state.take(&p("b"), Take::AllExcept(&keep)),
            [SessionHandle::of(&id(2))]
        );
        assert!(!state.is_member(&p("b"), &SessionHandle::of(&id(2))));
        assert_eq!(
            state.owned(&p("b"), &SessionHandle::of(&id(2))),
            Some(&id(2))
        );
        state.forget_id(&id(2));
        assert_eq!(state.len(), 2);
        drop(state);
        // A drop reported while the lock is held is applied by the next holder.
        let held = index.lock();
        index.removed(&Key::of(&id(1)));
        drop(held);
        assert_eq!(index.lock().len(), 1);
        index.removed(&Key::of(&id(3)));
        assert_eq!(index.lock().len(), 0);
        assert!(index.lock().members.is_empty());
    }
}

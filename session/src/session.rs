//! The session handle: typed reads and writes, the security methods, and the
//! commit that turns what changed into the fewest store writes.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::clock::duration_ms;
use crate::data::{Field, SessionData};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::manager::{Context, SessionManager};
use crate::record::{Meta, Record, Update};

/// One user's session, typed by its data struct `T`.
///
/// A cheap, shareable handle (`Arc` inside; `Send + Sync`, usable across
/// `.await` and from spawned tasks). Reads and writes are synchronous and
/// only touch memory; the store is written when the request ends (middleware
/// pattern) or when [`Session::save`] is called (store pattern).
///
/// Field access goes through typed [`Field`] keys, usually via the accessors
/// `#[derive(SessionData)]` generates (`session.visits()`,
/// `session.set_visits(3)`).
///
/// ```
/// # use sessionkit::*;
/// # #[derive(Default)] struct Counter { visits: u32 }
/// # impl SessionData for Counter {
/// #   const FIELDS: &'static [FieldInfo] = &[FieldInfo::new("visits", "visits")];
/// #   fn encode_field(&self, _: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> { encode_value(&self.visits, out) }
/// #   fn decode_field(&mut self, _: usize, b: &[u8]) -> Result<(), DecodeError> { self.visits = decode_value(b)?; Ok(()) }
/// #   fn reset_field(&mut self, _: usize) { self.visits = 0 }
/// # }
/// const VISITS: Field<Counter, u32> = Field::new(0, |c| &c.visits, |c| &mut c.visits);
/// # tokio_test(async {
/// let manager = SessionManager::<Counter>::new(MemoryStore::new());
/// let session = manager.create()?;
/// session.update(VISITS, |v| *v += 1);
/// session.save().await?;
/// let again = manager.load_by_id(session.id().as_str()).await?.expect("saved");
/// assert_eq!(again.get(VISITS), 1);
/// # Ok::<(), SessionError>(()) });
/// # fn tokio_test<F: std::future::Future<Output = Result<(), SessionError>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap() }
/// ```
pub struct Session<T: SessionData> {
    shared: Arc<Shared<T>>,
}

impl<T: SessionData> Clone for Session<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<T> {
    ctx: Arc<Context>,
    state: Mutex<State<T>>,
    /// Serializes commits of this session, so two tasks saving the same
    /// handle cannot reach the store out of order.
    commit: tokio::sync::Mutex<()>,
}

struct State<T> {
    data: T,
    id: SessionId,
    /// Created in this request (no stored session was found).
    fresh: bool,
    /// Whether `id` currently names a record in the store.
    persisted: bool,
    meta: Meta,
    meta_dirty: bool,
    /// Per field, by index in `T::FIELDS`.
    fields: Vec<FieldState>,
    /// `replace`/`modify` ran: absent fields count as set only if they now
    /// differ from their default.
    bulk: bool,
    /// The stored id this session must move away from at commit.
    rotate_from: Option<SessionId>,
    /// Ids whose records must be deleted at commit.
    delete_ids: Vec<SessionId>,
    /// The id changed since the client last saw it.
    id_changed: bool,
    /// The client's cookie/header must be cleared (reset, destroy).
    clear_client: bool,
}

/// What the session knows about one field.
#[derive(Clone, Default)]
struct FieldState {
    /// The bytes as they are in the store.
    stored: Option<Bytes>,
    /// The session holds the field (stored, or set since).
    present: bool,
    /// Written since the last commit.
    dirty: bool,
}

/// What a commit asks the integration to send back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdWrite {
    Nothing,
    Set(SessionId),
    Clear,
}

enum Op {
    Nothing,
    /// Only the metadata changed (e.g. a per-session idle timeout).
    Touch(Meta),
    Save(Update),
    Rotate(SessionId, Update),
}

impl<T: SessionData> Session<T> {
    pub(crate) fn new_fresh(ctx: Arc<Context>, id: SessionId, now: u64) -> Self {
        let n = T::FIELDS.len();
        let meta = ctx.new_meta(now);
        Self::from_state(
            ctx,
            State {
                data: T::default(),
                id,
                fresh: true,
                persisted: false,
                meta,
                meta_dirty: false,
                fields: vec![FieldState::default(); n],
                bulk: false,
                rotate_from: None,
                delete_ids: Vec::new(),
                id_changed: false,
                clear_client: false,
            },
        )
    }

    pub(crate) fn from_record(ctx: Arc<Context>, id: SessionId, record: Record, now: u64) -> Self {
        let n = T::FIELDS.len();
        let mut data = T::default();
        let mut fields = vec![FieldState::default(); n];
        for (index, field) in T::FIELDS.iter().enumerate() {
            let Some(bytes) = record.fields.get(field.name) else {
                continue;
            };
            if let Err(error) = data.decode_field(index, bytes) {
                tracing::warn!(
                    field = field.rust_name,
                    stored_as = field.name,
                    %error,
                    "stored session field no longer decodes as its type; using the field's default"
                );
                data.reset_field(index);
            }
            fields[index].stored = Some(bytes.clone());
            fields[index].present = true;
        }
        let mut meta = record.meta;
        meta.last_access = now;
        Self::from_state(
            ctx,
            State {
                data,
                id,
                fresh: false,
                persisted: true,
                meta,
                meta_dirty: false,
                fields,
                bulk: false,
                rotate_from: None,
                delete_ids: Vec::new(),
                id_changed: false,
                clear_client: false,
            },
        )
    }

    fn from_state(ctx: Arc<Context>, state: State<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                ctx,
                state: Mutex::new(state),
                commit: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every mutation below leaves `State` consistent before anything that
        // can panic (user closures run last), so a poisoned lock is usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The manager this session belongs to (Fiber's `sess.Store()`): load or
    /// delete other sessions by id from a handler or a background task.
    #[must_use]
    pub fn manager(&self) -> SessionManager<T> {
        SessionManager::from_context(Arc::clone(&self.shared.ctx))
    }

    /// The current session id (changes after [`Session::regenerate`] and [`Session::reset`]).
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.lock().id.clone()
    }

    /// Whether this session was created in this request (no stored session was found).
    #[must_use]
    pub fn fresh(&self) -> bool {
        self.lock().fresh
    }

    /// The stored names of the fields the session holds.
    #[must_use]
    pub fn keys(&self) -> Vec<&'static str> {
        let state = self.lock();
        T::FIELDS
            .iter()
            .zip(&state.fields)
            .filter(|(_, f)| f.present)
            .map(|(f, _)| f.name)
            .collect()
    }

    /// A clone of one field's value.
    #[must_use]
    pub fn get<V: Clone>(&self, field: Field<T, V>) -> V {
        field.get(&self.lock().data).clone()
    }

    /// Runs `f` on one field's value without cloning it.
    pub fn with<V, R>(&self, field: Field<T, V>, f: impl FnOnce(&V) -> R) -> R {
        f(field.get(&self.lock().data))
    }

    /// Sets one field; only this field is marked changed.
    pub fn set<V>(&self, field: Field<T, V>, value: V) {
        let mut state = self.lock();
        state.mark(field.index());
        *field.get_mut(&mut state.data) = value;
    }

    /// Changes one field in place; only this field is marked changed.
    pub fn update<V, R>(&self, field: Field<T, V>, f: impl FnOnce(&mut V) -> R) -> R {
        let mut state = self.lock();
        state.mark(field.index());
        f(field.get_mut(&mut state.data))
    }

    /// Removes one field from the session and returns its value; the field
    /// reads as its default afterwards and is deleted from the store.
    pub fn take<V: Default>(&self, field: Field<T, V>) -> V {
        let mut state = self.lock();
        let value = std::mem::take(field.get_mut(&mut state.data));
        state.unset(field.index());
        value
    }

    /// Removes one field from the session (it reads as its default afterwards).
    pub fn remove<V>(&self, field: Field<T, V>) {
        self.lock().unset(field.index());
    }

    /// Removes the field stored as `name` (or with that Rust name); returns
    /// whether such a field exists.
    pub fn remove_key(&self, name: &str) -> bool {
        let Some(index) = T::FIELDS
            .iter()
            .position(|f| f.name == name || f.rust_name == name)
        else {
            return false;
        };
        self.lock().unset(index);
        true
    }

    /// Runs `f` on the whole data struct.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock().data)
    }

    /// A copy of the whole data struct.
    #[must_use]
    pub fn snapshot(&self) -> T
    where
        T: Clone,
    {
        self.lock().data.clone()
    }

    /// Replaces the whole data struct; at commit only fields whose encoding
    /// differs from the stored one are written.
    pub fn replace(&self, data: T) {
        let mut state = self.lock();
        state.mark_all();
        state.data = data;
    }

    /// Changes the whole data struct in place; at commit only fields whose
    /// encoding changed are written.
    pub fn modify<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut state = self.lock();
        state.mark_all();
        f(&mut state.data)
    }

    /// Gives the session a new id and keeps its data; the old id is deleted
    /// from the store at commit. Call it on login and privilege changes
    /// (prevents session fixation). Does not extend the absolute timeout.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when no new id can be made.
    pub fn regenerate(&self) -> Result<(), SessionError> {
        let new_id = self.shared.ctx.ids.generate()?;
        let now = self.shared.ctx.clock.now_ms();
        let mut state = self.lock();
        let old = std::mem::replace(&mut state.id, new_id);
        if state.persisted && state.rotate_from.is_none() {
            state.rotate_from = Some(old);
        }
        state.meta.id_issued_at = now;
        state.id_changed = true;
        Ok(())
    }

    /// Clears all data and gives the session a new id; the old record is
    /// deleted at commit and the client's cookie/header cleared unless new
    /// data is set afterwards. Use on logout.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when no new id can be made.
    pub fn reset(&self) -> Result<(), SessionError> {
        let new_id = self.shared.ctx.ids.generate()?;
        let now = self.shared.ctx.clock.now_ms();
        let meta = self.shared.ctx.new_meta(now);
        let mut state = self.lock();
        state.clear_data();
        let old = std::mem::replace(&mut state.id, new_id);
        state.forget_stored(old);
        state.meta = meta;
        state.fresh = true;
        state.id_changed = true;
        state.clear_client = true;
        Ok(())
    }

    /// Clears all data and deletes the session from the store at commit; the
    /// client's cookie/header is cleared. The id is kept (if data is set
    /// afterwards it is saved under the same id).
    pub fn destroy(&self) {
        let mut state = self.lock();
        state.clear_data();
        let id = state.id.clone();
        state.forget_stored(id);
        state.clear_client = true;
    }

    /// Overrides the idle timeout for this session only (e.g. "remember me").
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let mut state = self.lock();
        state.meta.idle_timeout_ms = duration_ms(timeout).max(1);
        state.meta_dirty = true;
    }

    /// This session's idle timeout.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.lock().meta.idle_timeout_ms)
    }

    /// Writes what changed to the store now (store pattern). Middleware
    /// integrations call this for you when the request ends.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails, a field does not encode, or the
    /// session outgrew `maxSessionBytes`; the changes stay pending then.
    pub async fn save(&self) -> Result<(), SessionError> {
        self.commit().await.map(drop)
    }

    /// Commits pending changes and says what the client must be told.
    pub(crate) async fn commit(&self) -> Result<IdWrite, SessionError> {
        let _serial = self.shared.commit.lock().await;
        let ctx = &self.shared.ctx;
        let now = ctx.clock.now_ms();
        let renew_id = {
            let state = self.lock();
            state.persisted
                && state.rotate_from.is_none()
                && ctx
                    .renew_ms
                    .is_some_and(|after| now.saturating_sub(state.meta.id_issued_at) >= after)
        };
        let renew_id = if renew_id {
            Some(ctx.ids.generate()?)
        } else {
            None
        };

        let (deletes, target, op, written, write_back, meta_was_dirty) = {
            let mut state = self.lock();
            if let Some(new_id) = renew_id {
                let old = std::mem::replace(&mut state.id, new_id);
                state.rotate_from = Some(old);
                state.meta.id_issued_at = now;
                state.id_changed = true;
            }
            let plan = state.plan(ctx, now)?;
            // Take the pending work; it is put back if the store fails.
            let deletes = std::mem::take(&mut state.delete_ids);
            for (index, _) in &plan.written {
                state.fields[*index].dirty = false;
            }
            let meta_was_dirty = std::mem::take(&mut state.meta_dirty);
            // The id the write goes to is fixed now: a `regenerate()` from
            // another task during the store call must not redirect it.
            (
                deletes,
                state.id.clone(),
                plan.op,
                plan.written,
                plan.write_back,
                meta_was_dirty,
            )
        };

        let result = self.execute(&deletes, &target, &op).await;

        let mut state = self.lock();
        if let Err(error) = result {
            for (index, _) in &written {
                state.fields[*index].dirty = true;
            }
            state.meta_dirty |= meta_was_dirty;
            let mut restored = deletes;
            restored.append(&mut state.delete_ids);
            state.delete_ids = restored;
            return Err(error.into());
        }
        for (index, bytes) in written {
            state.fields[index].stored = bytes;
        }
        match &op {
            Op::Nothing => {}
            Op::Touch(meta) => state.meta = *meta,
            Op::Save(update) | Op::Rotate(_, update) => {
                state.meta = update.meta;
                state.persisted = true;
                if let Op::Rotate(old, _) = &op {
                    if state.rotate_from.as_ref() == Some(old) {
                        state.rotate_from = None;
                    }
                }
            }
        }
        if write_back != IdWrite::Nothing {
            state.id_changed = false;
            state.clear_client = false;
        }
        Ok(write_back)
    }

    async fn execute(
        &self,
        deletes: &[SessionId],
        id: &SessionId,
        op: &Op,
    ) -> Result<(), crate::StoreError> {
        let store = &self.shared.ctx.store;
        for deleted in deletes {
            store.delete(deleted).await?;
        }
        match op {
            Op::Nothing => Ok(()),
            Op::Touch(meta) => store.touch(id, meta).await,
            Op::Save(update) => store.save(id, update).await,
            Op::Rotate(old, update) => store.rotate(old, id, update).await,
        }
    }
}

struct Plan {
    op: Op,
    /// Fields written (Some) or removed (None) by `op`, to record as stored.
    written: Vec<(usize, Option<Bytes>)>,
    write_back: IdWrite,
}

impl<T: SessionData> State<T> {
    fn mark(&mut self, index: usize) {
        self.fields[index].dirty = true;
        self.fields[index].present = true;
    }

    fn mark_all(&mut self) {
        for field in &mut self.fields {
            field.dirty = true;
        }
        self.bulk = true;
    }

    /// After `replace`/`modify`: an absent field joins the session only if its
    /// encoding now differs from its default's.
    fn settle_bulk(&mut self) -> Result<(), SessionError> {
        if !std::mem::take(&mut self.bulk) {
            return Ok(());
        }
        let defaults = T::default();
        let (mut now, mut default) = (Vec::new(), Vec::new());
        for index in 0..T::FIELDS.len() {
            if self.fields[index].present || !self.fields[index].dirty {
                continue;
            }
            now.clear();
            default.clear();
            self.data.encode_field(index, &mut now)?;
            defaults.encode_field(index, &mut default)?;
            if now == default {
                self.fields[index].dirty = false;
            } else {
                self.fields[index].present = true;
            }
        }
        Ok(())
    }

    fn unset(&mut self, index: usize) {
        self.data.reset_field(index);
        self.fields[index].dirty = true;
        self.fields[index].present = false;
    }

    fn clear_data(&mut self) {
        self.data = T::default();
        for field in &mut self.fields {
            field.present = false;
            field.dirty = false;
        }
        self.bulk = false;
    }

    /// The record under `id` (and any rotation source) is to be deleted; the
    /// session now has nothing in the store.
    fn forget_stored(&mut self, id: SessionId) {
        if self.persisted {
            self.delete_ids.push(id);
        }
        if let Some(old) = self.rotate_from.take() {
            self.delete_ids.push(old);
        }
        self.persisted = false;
        for field in &mut self.fields {
            field.stored = None;
        }
    }

    fn plan(&mut self, ctx: &Context, now: u64) -> Result<Plan, SessionError> {
        self.settle_bulk()?;
        let has_data = self.fields.iter().any(|f| f.present);
        if !has_data {
            // An empty session is never stored; one that was stored is deleted.
            let id = self.id.clone();
            self.forget_stored(id);
            return Ok(Plan {
                op: Op::Nothing,
                written: Vec::new(),
                write_back: if self.clear_client {
                    IdWrite::Clear
                } else {
                    IdWrite::Nothing
                },
            });
        }

        let full = !self.persisted || self.rotate_from.is_some();
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut written = Vec::new();
        let mut size = 0usize;
        for (index, field) in T::FIELDS.iter().enumerate() {
            let state = &self.fields[index];
            if !state.present {
                if !full && state.dirty && state.stored.is_some() {
                    remove.push(field.name);
                    written.push((index, None));
                }
                continue;
            }
            let bytes = match (&state.stored, state.dirty) {
                (Some(stored), false) => stored.clone(),
                _ => {
                    let mut out = Vec::new();
                    self.data.encode_field(index, &mut out)?;
                    Bytes::from(out)
                }
            };
            size += field.name.len() + bytes.len();
            if full || state.stored.as_ref() != Some(&bytes) {
                set.push((field.name, bytes.clone()));
                written.push((index, Some(bytes)));
            } else if state.dirty {
                // Re-set to the stored value: nothing to write, but clear the mark.
                written.push((index, Some(bytes)));
            }
        }
        let limit = ctx.config.max_session_bytes;
        if size > limit {
            return Err(SessionError::TooLarge { size, limit });
        }

        let mut meta = self.meta;
        meta.last_access = now;
        let update = |set, remove, replace| Update {
            meta,
            set,
            remove,
            replace,
        };
        let op = if let Some(old) = self.rotate_from.clone() {
            Op::Rotate(old, update(set, Vec::new(), true))
        } else if full {
            Op::Save(update(set, Vec::new(), true))
        } else if set.is_empty() && remove.is_empty() {
            if self.meta_dirty {
                Op::Touch(meta)
            } else {
                Op::Nothing
            }
        } else {
            Op::Save(update(set, remove, false))
        };

        let cookie_refresh_due = ctx
            .cookie_refresh_ms
            .is_some_and(|half| now.saturating_sub(self.meta.id_issued_at) >= half);
        let write_back = if self.id_changed || !self.persisted || cookie_refresh_due {
            IdWrite::Set(self.id.clone())
        } else {
            IdWrite::Nothing
        };
        Ok(Plan {
            op,
            written,
            write_back,
        })
    }
}

impl<T: SessionData> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("id", &state.id)
            .field("fresh", &state.fresh)
            .field("persisted", &state.persisted)
            .finish_non_exhaustive()
    }
}

//! The session handle: typed reads and writes, the security methods, and the
//! driver of the commit (the decisions are in `commit.rs`, `state.rs` and
//! `plan.rs`).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::clock::duration_ms;
use crate::context::Context;
use crate::cookie_store::jar::Jar;
use crate::data::{Field, SessionData};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::lifecycle::commit::{Action, Answer, Commit, Finish};
use crate::lifecycle::group;
use crate::lifecycle::state::{Change, Edit, State};
use crate::plan::IdWrite;
use crate::record::Record;
use crate::revocation;
use crate::store::DynSessionStore;
use crate::turns::Turn;

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
/// # Concurrent requests of one session
///
/// Changes made **through a closure** ([`Session::update`] / `update_x`,
/// [`Session::modify`], [`Session::take`] / `take_x`) are read-modify-write
/// operations and are never lost: at commit the store checks that the fields
/// they read still hold what this request loaded. If a concurrent request
/// changed one of them, the runtime reloads the session, replays this
/// request's operations in order on the fresher values, and writes again (at
/// most 32 times, then [`SessionError::Conflict`]). Closures are therefore
/// `Fn` and may run more than once; they should compute only from their
/// argument. The value a closure returned to the handler is the one computed
/// on the value this request loaded: when a replay happened, the store holds
/// the replayed result (e.g. a counter incremented by two concurrent
/// requests holds 2 while each handler saw 1).
///
/// [`Session::set`] / `set_x`, [`Session::replace`] and [`Session::remove`]
/// are blind writes: the last writer wins.
///
/// ```
/// # use sessionkit::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
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

/// Method names of [`Session`] (and of the prelude traits it implements):
/// a derived accessor with one of these names would be shadowed by, or
/// clash with, the method, so `#[derive(SessionData)]` refuses a field
/// whose accessors would take one (the generated code checks each accessor
/// with [`is_reserved_name`] at compile time). A test keeps this list equal
/// to the `pub fn`s of `Session`'s inherent impls in this crate's sources.
pub const RESERVED_NAMES: &[&str] = &[
    // Inherent methods.
    "manager",
    "degraded",
    "id",
    "fresh",
    "keys",
    "get",
    "with",
    "set",
    "update",
    "take",
    "take_once",
    "remove",
    "remove_key",
    "read",
    "snapshot",
    "replace",
    "modify",
    "regenerate",
    "reset",
    "destroy",
    "csrf_token",
    "set_idle_timeout",
    "use_configured_idle_timeout",
    "idle_timeout",
    "save",
    // `Clone`, `ToOwned`, `Into`, `TryInto`.
    "clone",
    "clone_from",
    "to_owned",
    "clone_into",
    "into",
    "try_into",
];

/// Whether `name` is in [`RESERVED_NAMES`]; `const`, so generated code can
/// check at compile time.
#[must_use]
pub const fn is_reserved_name(name: &str) -> bool {
    let mut i = 0;
    while i < RESERVED_NAMES.len() {
        if const_eq(RESERVED_NAMES[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
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
    /// Serializes commits of this handle, so two tasks saving the same
    /// handle cannot reach the store out of order.
    commit: tokio::sync::Mutex<()>,
    /// With the cookie store, this request's cookie session: the store its
    /// commits go to instead of the manager's.
    jar: Option<Jar>,
}

impl<T: SessionData> Session<T> {
    pub(crate) fn new_fresh(ctx: Arc<Context>, id: SessionId, now: u64, stale: bool) -> Self {
        let meta = ctx.new_meta(now);
        Self::from_state(ctx, State::fresh(id, meta, stale), None)
    }

    /// A fresh session of the cookie store, committed into an empty jar.
    pub(crate) fn new_in_jar(ctx: Arc<Context>, id: SessionId, now: u64, stale: bool) -> Self {
        let meta = ctx.new_meta(now);
        Self::from_state(ctx, State::fresh(id, meta, stale), Some(Jar::default()))
    }

    /// An anonymous session for a request whose store failed: fresh, never
    /// written, never sends or clears an id.
    pub(crate) fn new_degraded(ctx: Arc<Context>, id: SessionId, now: u64) -> Self {
        let session = Self::new_fresh(ctx, id, now, false);
        session.lock().degraded = true;
        session
    }

    /// A stored session, reached as `reached` says.
    pub(crate) fn from_record(
        ctx: Arc<Context>,
        id: SessionId,
        record: Record,
        reached: crate::lifecycle::state::Reached,
    ) -> Self {
        Self::from_state(ctx, State::stored(id, record, reached), None)
    }

    /// A session a cookie carried (the cookie store), committed into a jar
    /// seeded with it.
    pub(crate) fn from_cookie(
        ctx: Arc<Context>,
        id: SessionId,
        record: Record,
        reached: crate::lifecycle::state::Reached,
    ) -> Self {
        let jar = Jar::holding(id.clone(), record.clone());
        Self::from_state(ctx, State::stored(id, record, reached), Some(jar))
    }

    fn from_state(ctx: Arc<Context>, state: State<T>, jar: Option<Jar>) -> Self {
        Self {
            shared: Arc::new(Shared {
                ctx,
                state: Mutex::new(state),
                commit: tokio::sync::Mutex::new(()),
                jar,
            }),
        }
    }

    /// With the cookie store, what this session's cookie must carry now.
    pub(crate) fn jar(&self) -> Option<&Jar> {
        self.shared.jar.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // User closures run while the lock is held; every mutation around them
        // leaves `State` consistent, so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared context (for the manager, in `manager.rs`).
    pub(crate) fn context(&self) -> Arc<Context> {
        Arc::clone(&self.shared.ctx)
    }

    /// The current session id (changes after [`Session::regenerate`],
    /// [`Session::reset`] and an auto-renewal at commit).
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.lock().id.clone()
    }

    /// Whether this session was created in this request (no stored session was found).
    #[must_use]
    pub fn fresh(&self) -> bool {
        self.lock().fresh
    }

    /// Whether this is an anonymous stand-in because the store failed
    /// (under [`FailurePolicy::Anonymous`](crate::FailurePolicy)): it starts
    /// empty, and nothing done to it is saved or sent to the client.
    #[must_use]
    pub fn degraded(&self) -> bool {
        self.lock().degraded
    }

    /// The stored names of the fields the session holds.
    #[must_use]
    pub fn keys(&self) -> Vec<&'static str> {
        let state = self.lock();
        T::FIELDS
            .iter()
            .zip(&state.fields)
            .filter(|(_, f)| f.present())
            .map(|(f, _)| f.name)
            .collect()
    }

    /// A clone of one field's value.
    #[must_use]
    pub fn get<V: Clone>(&self, field: Field<T, V>) -> V {
        let mut state = self.lock();
        state.decode(field.index());
        field.get(&state.data).clone()
    }

    /// Runs `f` on one field's value without cloning it.
    pub fn with<V, R>(&self, field: Field<T, V>, f: impl FnOnce(&V) -> R) -> R {
        let mut state = self.lock();
        state.decode(field.index());
        f(field.get(&state.data))
    }

    /// Sets one field: a blind write (the last writer wins); only this field
    /// is marked changed.
    pub fn set<V>(&self, field: Field<T, V>, value: V)
    where
        V: Clone + Send + Sync + 'static,
    {
        let op = move |data: &mut T| *field.get_mut(data) = value.clone();
        self.lock().record(Change::Apply {
            target: Some(field.index()),
            reads: false,
            f: Arc::new(op),
        });
    }

    /// Changes one field with `f`, a read-modify-write that is never lost to
    /// a concurrent request: `f` may run again at commit on a fresher value
    /// (see the type's docs), so it is `Fn` and should compute only from its
    /// argument. Returns what `f` returned on this request's value.
    pub fn update<V, R, F>(&self, field: Field<T, V>, f: F) -> R
    where
        V: 'static,
        F: Fn(&mut V) -> R + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut state = self.lock();
        state.decode(field.index());
        let result = f(field.get_mut(&mut state.data));
        let replay = move |data: &mut T| {
            f(field.get_mut(data));
        };
        state.log(Change::Apply {
            target: Some(field.index()),
            reads: true,
            f: Arc::new(replay),
        });
        result
    }

    /// Removes one field from the session and returns its value; the field
    /// reads as its default afterwards and is deleted from the store. If a
    /// concurrent request changed the field meanwhile, its newer value stays.
    pub fn take<V: Default>(&self, field: Field<T, V>) -> V {
        let mut state = self.lock();
        let index = field.index();
        state.decode(index);
        let mut seen = Vec::new();
        let seen = state
            .data
            .encode_field(index, &mut seen)
            .ok()
            .map(|()| seen);
        let value = std::mem::take(field.get_mut(&mut state.data));
        state.data.reset_field(index);
        state.log(Change::Take {
            index,
            seen,
            once: false,
        });
        value
    }

    /// Takes a one-time value (a flash message) so that exactly one request
    /// gets it: removes the field from the store **now**, with a write
    /// conditional on the field still holding the bytes this request
    /// loaded, and returns the value only if that write is the one that
    /// applied. Of two requests taking the same message concurrently (two
    /// tabs), one gets `Some` and the other `None`; a concurrent change of
    /// another field is kept (only this field is removed).
    ///
    /// The field is written as `None` rather than deleted, so taking the
    /// last value of a session never deletes the session under a
    /// concurrent request's write.
    ///
    /// Costs nothing when the field is not set: no write, no store access
    /// beyond the session's load. A value set earlier in this request is
    /// taken in memory. Other changes pending in this request are written
    /// with it (as by [`Session::save`]); the response still carries what
    /// the client must be told. `#[session(flash)]` fields get this as
    /// `take_x().await`.
    ///
    /// # Errors
    /// [`SessionError`] when the write fails; the value stays in the store.
    pub async fn take_once<V>(&self, field: Field<T, Option<V>>) -> Result<Option<V>, SessionError>
    where
        V: Send + 'static,
    {
        let index = field.index();
        let value = {
            let mut state = self.lock();
            let f = &state.fields[index];
            if f.edit != Edit::None || state.degraded {
                drop(state);
                return Ok(self.take(field));
            }
            if f.stored.is_none() {
                return Ok(None);
            }
            state.decode(index);
            if field.get(&state.data).is_none() {
                return Ok(None);
            }
            let mut seen = Vec::new();
            let seen = state
                .data
                .encode_field(index, &mut seen)
                .ok()
                .map(|()| seen);
            let value = field.get_mut(&mut state.data).take();
            state.data.reset_field(index);
            state.lost_takes.retain(|i| *i != index);
            state.log(Change::Take {
                index,
                seen,
                once: true,
            });
            value
        };
        let told = self.commit(false).await?;
        let mut state = self.lock();
        // What this commit would have told the client is told by the
        // request's own commit.
        state.defer_to_request(&told);
        if state.lost_takes.contains(&index) {
            state.lost_takes.retain(|i| *i != index);
            return Ok(None);
        }
        Ok(value)
    }

    /// Removes one field from the session (it reads as its default
    /// afterwards): a blind write.
    pub fn remove<V>(&self, field: Field<T, V>) {
        self.lock().record(Change::Remove(field.index()));
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
        self.lock().record(Change::Remove(index));
        true
    }

    /// Runs `f` on the whole data struct.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let mut state = self.lock();
        state.decode_all();
        f(&state.data)
    }

    /// A copy of the whole data struct.
    #[must_use]
    pub fn snapshot(&self) -> T
    where
        T: Clone,
    {
        let mut state = self.lock();
        state.decode_all();
        state.data.clone()
    }

    /// Replaces the whole data struct (a blind write of every field); at
    /// commit only fields whose encoding differs from the stored one are
    /// written.
    pub fn replace(&self, data: T)
    where
        T: Clone,
    {
        let op = move |target: &mut T| *target = data.clone();
        self.lock().record(Change::Apply {
            target: None,
            reads: false,
            f: Arc::new(op),
        });
    }

    /// Changes the whole data struct with `f`, a read-modify-write of every
    /// field (see the type's docs: `f` may run again on fresher data); at
    /// commit only fields whose encoding changed are written.
    pub fn modify<R, F>(&self, f: F) -> R
    where
        F: Fn(&mut T) -> R + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut state = self.lock();
        state.decode_all();
        let result = f(&mut state.data);
        let replay = move |data: &mut T| {
            f(data);
        };
        state.log(Change::Apply {
            target: None,
            reads: true,
            f: Arc::new(replay),
        });
        result
    }

    /// Gives the session a new id and keeps its data; the old id stops
    /// working at commit, with no grace period. Call it on login and
    /// privilege changes (prevents session fixation). Does not extend the
    /// absolute timeout.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when no new id can be made.
    pub fn regenerate(&self) -> Result<(), SessionError> {
        let new_id = self.shared.ctx.ids.generate()?;
        let now = self.shared.ctx.clock.now_ms();
        let mut state = self.lock();
        state.rotate(new_id, 0, now);
        state.retire_secret();
        Ok(())
    }

    /// Clears all data and gives the session a new id; the stored session
    /// (and any id it was rotated from or to) is deleted at commit and the
    /// client's cookie/header cleared, unless new data is set afterwards,
    /// which is then stored under the new id. Use on logout.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when no new id can be made.
    pub fn reset(&self) -> Result<(), SessionError> {
        let new_id = self.shared.ctx.ids.generate()?;
        let now = self.shared.ctx.clock.now_ms();
        let meta = self.shared.ctx.new_meta(now);
        self.lock().forget(new_id, meta, false);
        Ok(())
    }

    /// Clears all data and deletes the session from the store at commit; the
    /// client's cookie/header is cleared. Data set afterwards in the same
    /// request is never stored under the destroyed id: it starts a new
    /// session with a new id (made at commit), as after [`Session::reset`].
    pub fn destroy(&self) {
        let now = self.shared.ctx.clock.now_ms();
        let meta = self.shared.ctx.new_meta(now);
        let mut state = self.lock();
        let id = state.id.clone();
        state.forget(id, meta, true);
    }

    /// A CSRF token for this session, to put in a form's hidden
    /// `csrf_token` field or a `<meta name="csrf-token">` tag. Every call
    /// returns a different string (the secret masked with a fresh one-time
    /// pad), and all of them stay valid until the session's next
    /// [`Session::regenerate`] or [`Session::reset`].
    ///
    /// The first call on a session without a secret creates one, which is
    /// stored at commit: a page that shows a form therefore starts a
    /// session (and sets its cookie); a page without forms does not.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when the OS random source fails.
    pub fn csrf_token(&self) -> Result<String, SessionError> {
        let mut state = self.lock();
        let secret = match state.secret.current() {
            Some(bytes) => <crate::csrf::token::Secret>::try_from(&bytes[..]).ok(),
            None => None,
        };
        let secret = match secret {
            Some(secret) => secret,
            None => {
                // None stored, or one of another length (never written by
                // this runtime): a new one.
                let secret = crate::csrf::token::new_secret()?;
                state.new_secret(Bytes::copy_from_slice(&secret));
                secret
            }
        };
        Ok(crate::csrf::token::issue(&secret)?)
    }

    /// The CSRF secret, if the session has one (for the request check).
    pub(crate) fn csrf_secret(&self) -> Option<Bytes> {
        self.lock().secret.current().cloned()
    }

    /// Overrides the idle timeout for this session only (e.g. "remember
    /// me"). The cookie's lifetime follows it (see the crate docs on cookie
    /// lifetime).
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let mut state = self.lock();
        state.meta.idle_timeout_ms = duration_ms(timeout).max(1);
        state.meta_changed = true;
    }

    /// Drops a per-session idle timeout set by [`Session::set_idle_timeout`]:
    /// the session goes back to the configured `idleTimeout`, and its cookie
    /// to the configured lifetime (a browser-session cookie again under
    /// `cookieSessionOnly`). Call it at a sign-in without "remember me", so a
    /// browser that was remembered before is not remembered again.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionkit::*;
    /// # use sessionkit::codec::*;
    /// # use sessionkit::codec::*;
    /// # use sessionkit::codec::*;
    /// # #[derive(Default)] struct Data;
    /// # impl SessionData for Data {
    /// #   const FIELDS: &'static [FieldInfo] = &[];
    /// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), EncodeError> { Err(EncodeError::no_field(i)) }
    /// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), DecodeError> { Err(DecodeError::no_field(i)) }
    /// #   fn reset_field(&mut self, _: usize) {}
    /// # }
    /// let manager = SessionManager::<Data>::new(MemoryStore::new());
    /// let session = manager.create()?;
    /// session.set_idle_timeout(Duration::from_secs(30 * 24 * 3600));
    /// session.use_configured_idle_timeout();
    /// assert_eq!(session.idle_timeout(), manager.config().idle_timeout);
    /// # Ok::<(), SessionError>(())
    /// ```
    pub fn use_configured_idle_timeout(&self) {
        let idle_ms = self.shared.ctx.idle_ms;
        let mut state = self.lock();
        if state.meta.idle_timeout_ms != idle_ms {
            state.meta.idle_timeout_ms = idle_ms;
            state.meta_changed = true;
        }
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
    /// [`SessionError`] when the store fails, a field does not encode, the
    /// session outgrew `maxSessionBytes` or concurrent changes kept
    /// conflicting; the changes stay pending then.
    pub async fn save(&self) -> Result<(), SessionError> {
        self.commit(false).await.map(drop)
    }

    /// Commits pending changes and says what the client must be told. With
    /// `failed` (the request failed) and `saveOnError` off, nothing is
    /// written and the pending changes are dropped.
    ///
    /// The driver of the commit state machine (`commit.rs`): it executes
    /// each action and hands back the answer; it decides nothing.
    pub(crate) async fn commit(&self, failed: bool) -> Result<IdWrite, SessionError> {
        let _serial = self.shared.commit.lock().await;
        let discard = failed && !self.shared.ctx.config.save_on_error;
        // Group commit is for server stores: a cookie session's jar is this
        // request's alone.
        let mut grouping = self.shared.jar.is_none();
        loop {
            match self.commit_once(discard, grouping).await {
                Attempt::Done(result) => return result,
                // The write with other requests' changes was refused: once
                // more, alone (which never asks for another run).
                Attempt::Alone => grouping = false,
            }
        }
    }

    /// One run of the commit state machine. With `grouping`, a commit that
    /// waits for its turn posts its changes for the holder to write
    /// (`group.rs`), and a holder writes the changes posted for it.
    async fn commit_once(&self, discard: bool, grouping: bool) -> Attempt {
        let ctx = &self.shared.ctx;
        let store: &dyn DynSessionStore = match &self.shared.jar {
            Some(jar) => jar,
            None => &*ctx.store,
        };
        let now = ctx.clock.now_ms();
        let mut commit = Commit::new(ctx.policy, now, discard);
        // This session's turn among the manager's requests, held to the
        // end, and the id it is for.
        let mut turn: Option<(Turn<'_>, SessionId)> = None;
        // Other requests' changes this commit writes with its own (dropped
        // after `turn` if the commit is cancelled: their requests then
        // learn that the outcome is unknown).
        let mut gathered: Option<group::Gathered<T>> = None;
        let mut answer = Answer::Start;
        loop {
            let action = commit.step(&mut self.lock(), answer);
            answer = match action {
                Action::Delete { id, cause } => {
                    let deleted = store.delete_boxed(&id).await;
                    if deleted.is_ok() {
                        ctx.stripes.of(&id).forget(&id);
                        ctx.observer.destroyed(&id, cause);
                    }
                    Answer::Deleted(deleted)
                }
                Action::NewId => Answer::NewId(ctx.ids.generate()),
                Action::TakeTurn(id) => {
                    let held = match self.wait_for_turn(&id, grouping, now).await {
                        Waited::Turn(held) => held,
                        Waited::Settled(result) => return Attempt::Done(result),
                    };
                    let mut state = self.lock();
                    if let Some(record) = held.last(&id) {
                        state.rebase(record);
                    }
                    if grouping {
                        gathered = group::gather(&held, &id, &mut state);
                    }
                    turn = Some((held, id));
                    Answer::TurnTaken
                }
                Action::Write(write) => Answer::Written(store.write_boxed(write).await),
                Action::Report { write, fields } => {
                    let mut state = self.lock();
                    if ctx.observer.wants_data() {
                        state.decode_all();
                    }
                    ctx.observer.written(write, fields, &state.data);
                    Answer::Reported
                }
                Action::Evict {
                    principal,
                    current,
                    cap,
                    now,
                } => {
                    revocation::evict_over_cap::<T>(ctx, principal, &current, cap, now).await;
                    Answer::Evicted
                }
                Action::Finish(finish) => {
                    let mut state = self.lock();
                    if let (Some((held, id)), Finish::Wrote(_)) = (&turn, &finish) {
                        if state.id == *id {
                            if let Some(record) = state.stored_record() {
                                held.remember(id, record);
                            }
                        }
                    }
                    // Every waiter hears back before the turn is released.
                    let alone = gathered
                        .take()
                        .is_some_and(|gathered| gathered.answer(&finish, &mut state));
                    drop(state);
                    if alone {
                        return Attempt::Alone;
                    }
                    return Attempt::Done(match finish {
                        Finish::Wrote(client) => Ok(client),
                        Finish::Quiet(outcome, client) => {
                            ctx.observer.commit(outcome);
                            Ok(client)
                        }
                        Finish::Refused(outcome, error) => {
                            ctx.observer.commit(outcome);
                            Err(error)
                        }
                        Finish::Failed(error) => Err(error),
                    });
                }
            };
        }
    }

    /// Waits for `id`'s turn. With `grouping`, a commit whose changes may be
    /// written by another posts them first, and is done if the holder of
    /// the turn wrote them (or found the session gone) before its turn came.
    async fn wait_for_turn<'a>(&'a self, id: &SessionId, grouping: bool, now: u64) -> Waited<'a> {
        let ctx = &self.shared.ctx;
        let stripe = ctx.stripes.of(id);
        // Uncontended: nothing to post, nobody to wait for.
        if let Some(held) = stripe.try_take_turn() {
            return Waited::Turn(held);
        }
        let posting = if grouping {
            group::posting(&self.lock())
        } else {
            None
        };
        let Some(group::Posting {
            fold,
            planned,
            mut reply,
        }) = posting
        else {
            return Waited::Turn(stripe.take_turn().await);
        };
        let posted = stripe.post(id.clone(), Box::new(fold));
        let woke = {
            // Whichever comes first; the wait for the turn is dropped with
            // this block (a pending wait left behind would be handed the
            // turn and never take it).
            let mut wait = std::pin::pin!(stripe.take_turn());
            std::future::poll_fn(|cx| {
                use std::future::Future;
                if let std::task::Poll::Ready(outcome) = std::pin::Pin::new(&mut reply).poll(cx) {
                    return std::task::Poll::Ready(Woke::Heard(outcome.ok()));
                }
                wait.as_mut().poll(cx).map(Woke::Turn)
            })
            .await
        };
        let outcome = match woke {
            Woke::Heard(outcome) => outcome,
            Woke::Turn(held) => {
                if posted.withdraw() {
                    // Nobody gathered it: this commit writes for itself.
                    return Waited::Turn(held);
                }
                // Gathered by a holder, which answered before it let the
                // turn go (or went away without answering).
                reply.try_recv().ok()
            }
        };
        let Some(outcome) = outcome else {
            return Waited::Settled(Err(group::HolderCancelled::error().into()));
        };
        let settled = group::settle(&mut self.lock(), outcome, planned, &ctx.policy, now);
        match settled {
            Some((outcome, client)) => {
                ctx.observer.commit(outcome);
                Waited::Settled(Ok(client))
            }
            None => Waited::Turn(stripe.take_turn().await),
        }
    }
}

/// How one run of the commit ended.
enum Attempt {
    Done(Result<IdWrite, SessionError>),
    /// Run again without writing other requests' changes.
    Alone,
}

/// How a wait for the turn ended.
enum Waited<'a> {
    /// The turn is held.
    Turn(Turn<'a>),
    /// Another request's write settled this commit.
    Settled(Result<IdWrite, SessionError>),
}

/// What woke a commit that posted its changes.
enum Woke<'a> {
    /// The holder answered (`None`: it went away without answering).
    Heard(Option<group::Outcome>),
    Turn(Turn<'a>),
}

impl<T: SessionData> Session<T> {
    /// The manager this session belongs to (Fiber's `sess.Store()`): load or
    /// delete other sessions by id from a handler or a background task.
    #[must_use]
    pub fn manager(&self) -> crate::lifecycle::manager::SessionManager<T> {
        crate::lifecycle::manager::SessionManager::from_context(self.context())
    }
}

impl<T: SessionData> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("id", &state.id)
            .field("fresh", &state.fresh)
            .field("standing", &state.standing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public methods of `Session`'s inherent impls, read from every
    /// source file of the crate (an impl block may live next to what it
    /// needs, as `manager()` does in `manager.rs`).
    fn inherent_methods() -> Vec<String> {
        fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("the source directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(std::fs::read_to_string(&path).expect("a source file"));
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut names = Vec::new();
        for source in &files {
            let mut inside = false;
            for line in source.lines() {
                if line.starts_with("impl<T: SessionData> Session<T> {") {
                    inside = true;
                } else if inside && line == "}" {
                    inside = false;
                } else if inside {
                    let rest = line.trim_start();
                    let rest = rest
                        .strip_prefix("pub fn ")
                        .or_else(|| rest.strip_prefix("pub async fn "))
                        .or_else(|| rest.strip_prefix("pub const fn "));
                    if let Some(rest) = rest {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        names.push(name);
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_public_method_is_reserved_and_every_reserved_name_is_a_method() {
        let methods = inherent_methods();
        assert!(methods.len() > 15, "the scan found {methods:?}");
        for method in &methods {
            assert!(
                is_reserved_name(method),
                "Session::{method} is not in RESERVED_NAMES: a field named {method} would be shadowed"
            );
        }
        let traits = [
            "clone",
            "clone_from",
            "to_owned",
            "clone_into",
            "into",
            "try_into",
        ];
        for name in RESERVED_NAMES {
            assert!(
                methods.iter().any(|m| m == name) || traits.contains(name),
                "{name} is reserved but Session has no such method"
            );
        }
    }

    /// A memory store whose writes are counted and, while `held`, wait for
    /// a permit.
    #[derive(Clone)]
    struct HeldWrites {
        inner: crate::MemoryStore,
        writes: Arc<std::sync::atomic::AtomicUsize>,
        held: Arc<std::sync::atomic::AtomicBool>,
        permits: Arc<tokio::sync::Semaphore>,
    }

    impl Default for HeldWrites {
        fn default() -> Self {
            Self {
                inner: crate::MemoryStore::new(),
                writes: Arc::default(),
                held: Arc::default(),
                permits: Arc::new(tokio::sync::Semaphore::new(0)),
            }
        }
    }

    impl crate::store::SessionStore for HeldWrites {
        async fn load(
            &self,
            id: &SessionId,
            now: u64,
        ) -> Result<crate::store::Loaded, crate::store::StoreError> {
            self.inner.load(id, now).await
        }
        async fn write(
            &self,
            write: &crate::store::Write,
        ) -> Result<crate::store::Written, crate::store::StoreError> {
            use std::sync::atomic::Ordering;
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.held.load(Ordering::SeqCst) {
                if let Ok(permit) = self.permits.acquire().await {
                    permit.forget();
                }
            }
            self.inner.write(write).await
        }
        async fn delete(&self, id: &SessionId) -> Result<(), crate::store::StoreError> {
            self.inner.delete(id).await
        }
    }

    type Cart = crate::lifecycle::commit::tests::Cart;

    /// Eight requests of one session, all changing it at once while the
    /// first one's write is held: the first writes alone, the next one to
    /// take the turn writes for all the others (two writes in all), every
    /// increment is kept, and each request's session shows what was written.
    #[tokio::test]
    async fn requests_waiting_for_their_turn_are_written_with_the_next_write() {
        use std::sync::atomic::Ordering;
        let store = HeldWrites::default();
        let manager = crate::SessionManager::<Cart>::new(store.clone());
        let first = manager.create().unwrap();
        first.modify(|c| c.n = 100);
        first.save().await.unwrap();
        let id = first.id();
        store.writes.store(0, Ordering::SeqCst);
        store.held.store(true, Ordering::SeqCst);

        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let manager = manager.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let session = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
                    let seen = session.modify(|c| {
                        c.n += 1;
                        c.n
                    });
                    session.save().await.unwrap();
                    (seen, session.read(|c| c.n))
                })
            })
            .collect();
        // The first write is held; the seven others post their changes.
        let stripe = manager.ctx.stripes.of(&id);
        let mut spins = 0_u32;
        while store.writes.load(Ordering::SeqCst) < 1 || stripe.posted(&id) < 7 {
            spins += 1;
            assert!(
                spins < 1_000_000,
                "{} writes, {} posted",
                store.writes.load(Ordering::SeqCst),
                stripe.posted(&id)
            );
            tokio::task::yield_now().await;
        }
        store.held.store(false, Ordering::SeqCst);
        store.permits.add_permits(1);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(
            store.writes.load(Ordering::SeqCst),
            2,
            "one write alone, one for seven"
        );
        let after = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
        assert_eq!(after.read(|c| c.n), 108, "every increment kept");
        for (seen, now) in results {
            assert_eq!(
                seen, 101,
                "each handler saw the value computed on its own load"
            );
            assert!(
                now == 101 || now == 108,
                "the session shows what was written: {now}"
            );
        }
    }

    /// The encoded size of a session holding `data`, as the size check sees
    /// it (from the error a manager with a 1-byte limit gives).
    async fn encoded_size(data: Cart) -> usize {
        let config = crate::Config::builder()
            .max_session_bytes(1_usize)
            .build()
            .unwrap();
        let probe = crate::SessionManager::<Cart>::builder(crate::MemoryStore::new())
            .config(config)
            .build()
            .unwrap();
        let session = probe.create().unwrap();
        session.replace(data);
        match session.save().await {
            Err(SessionError::TooLarge { size, .. }) => size,
            other => panic!("{other:?}"),
        }
    }

    /// A combined write over `maxSessionBytes` (the holder's change fits,
    /// a waiter's does not): the holder writes again alone and succeeds,
    /// the waiter is refused on its own write, and nothing of it is stored.
    #[tokio::test]
    async fn a_combined_write_refused_as_too_large_is_sent_again_alone() {
        use std::sync::atomic::Ordering;
        let fits = encoded_size(Cart { user: None, n: 3 }).await;
        let store = HeldWrites::default();
        let config = crate::Config::builder()
            .max_session_bytes(fits)
            .build()
            .unwrap();
        let manager = crate::SessionManager::<Cart>::builder(store.clone())
            .config(config)
            .build()
            .unwrap();
        let first = manager.create().unwrap();
        first.modify(|c| c.n = 1);
        first.save().await.unwrap();
        let id = first.id();
        store.held.store(true, Ordering::SeqCst);
        let stripe = manager.ctx.stripes.of(&id);
        let spawn = |f: fn(&mut Cart)| {
            let manager = manager.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let session = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
                session.modify(f);
                session.save().await
            })
        };
        let (writes, id_) = (Arc::clone(&store.writes), id.clone());
        let wait = |posted: usize| {
            let (writes, id) = (Arc::clone(&writes), id_.clone());
            async move {
                let mut spins = 0_u32;
                while writes.load(Ordering::SeqCst) < 1 || stripe.posted(&id) < posted {
                    spins += 1;
                    assert!(spins < 1_000_000, "{posted} postings never came");
                    tokio::task::yield_now().await;
                }
            }
        };
        // The first request's write is held; then the holder-to-be and the
        // waiter post, in that order.
        let a = spawn(|c| c.n += 1);
        wait(0).await;
        let holder = spawn(|c| c.n += 1);
        wait(1).await;
        let waiter = spawn(|c| c.user = Some(u64::MAX));
        wait(2).await;
        store.held.store(false, Ordering::SeqCst);
        store.permits.add_permits(1);
        a.await.unwrap().unwrap();
        holder.await.unwrap().unwrap();
        assert!(matches!(
            waiter.await.unwrap(),
            Err(SessionError::TooLarge { .. })
        ));
        let after = manager.load_by_id(id.as_str()).await.unwrap().unwrap();
        assert_eq!(after.read(|c| (c.n, c.user)), (3, None));
    }

    #[test]
    fn reserved_names_are_matched_exactly() {
        assert!(is_reserved_name("manager"));
        assert!(is_reserved_name("id"));
        assert!(!is_reserved_name("i"));
        assert!(!is_reserved_name("ids"));
        assert!(!is_reserved_name(""));
        const { assert!(is_reserved_name("save")) };
    }
}

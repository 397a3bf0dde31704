//! The session handle: typed reads and writes, the security methods, and the
//! commit that executes the planner's decisions (`plan.rs`) against the store.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::clock::duration_ms;
use crate::context::Context;
use crate::data::{Field, SessionData};
use crate::error::SessionError;
use crate::events::DestroyCause;
use crate::id::SessionId;
use crate::metrics::Outcome;
use crate::plan::{self, FieldPlan, IdWrite, Input, Next, Plan, Standing};
use crate::record::{Fields, Meta, Record};
use crate::store::{DynSessionStore, Write, WriteKind, Written};

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
}

/// A change made in this request, kept so it can be replayed on fresher
/// data after a conflict.
enum Op<T> {
    /// A closure over one field (`Some(index)`) or the whole struct; `reads`
    /// when its result depends on the value it was given.
    Apply {
        target: Option<usize>,
        reads: bool,
        f: Arc<dyn Fn(&mut T) + Send + Sync>,
    },
    /// The field is removed.
    Remove(usize),
    /// The field is removed if it still holds what was taken (encoded);
    /// `once`: a [`Session::take_once`], whose value the handler gets only
    /// if this removal is the one that applies.
    Take {
        index: usize,
        seen: Option<Vec<u8>>,
        once: bool,
    },
}

/// The session's CSRF secret, kept beside the fields as the reserved
/// stored field `@csrf` (`csrf.rs`).
#[derive(Clone, Default)]
struct SecretSlot {
    /// The bytes in the store.
    stored: Option<Bytes>,
    /// What the session should hold after the commit, when `changed`.
    want: Option<Bytes>,
    /// Created or dropped in this request.
    changed: bool,
    /// The change count when it was last changed.
    changed_at: u64,
}

impl SecretSlot {
    fn current(&self) -> Option<&Bytes> {
        if self.changed {
            self.want.as_ref()
        } else {
            self.stored.as_ref()
        }
    }
}

struct State<T> {
    data: T,
    /// The id the session has (after this request's rotation, if any).
    id: SessionId,
    /// Created in this request (no stored session was found).
    fresh: bool,
    standing: Standing,
    /// The metadata as the store holds it.
    stored_meta: Option<Meta>,
    meta: Meta,
    meta_changed: bool,
    fields: Vec<FieldState>,
    ops: Vec<Op<T>>,
    /// Ids whose records are deleted at commit (reset, destroy).
    deletes: Vec<SessionId>,
    /// The client must be told the id even if nothing is written.
    id_news: bool,
    /// The client holds an id that resolves to nothing any more.
    stale: bool,
    /// A new id must be made before data is stored again (`destroy`).
    needs_id: bool,
    /// Counts changes, so a commit can tell the changes it wrote from those
    /// made by other tasks while its write was in flight.
    version: u64,
    /// The session was found rotated by a concurrent request: no renewal now.
    renew_checked: bool,
    /// Made because the store failed, under `FailurePolicy::Anonymous`:
    /// never written, never sends an id (`degraded.rs`).
    degraded: bool,
    /// The CSRF secret.
    secret: SecretSlot,
    /// Fields whose `take_once` lost to a concurrent request (found changed
    /// at a replay, or the session gone).
    lost_takes: Vec<usize>,
}

/// What the session knows about one field.
#[derive(Clone, Default)]
struct FieldState {
    /// The bytes in the store (as loaded or last written).
    stored: Option<Bytes>,
    /// Changed in this request.
    touched: bool,
    /// Removed in this request (and not set again since).
    removed: bool,
    /// Its value depends on `stored` (read-modify-write before any blind write).
    expect: bool,
    /// A blind write happened in this request.
    blind: bool,
    /// The change count when it was last touched.
    touched_at: u64,
    /// `stored` is not decoded into the data yet: fields are decoded on
    /// first access, so a request pays only for the fields it uses.
    pending: bool,
}

impl<T: SessionData> Session<T> {
    pub(crate) fn new_fresh(ctx: Arc<Context>, id: SessionId, now: u64, stale: bool) -> Self {
        let meta = ctx.new_meta(now);
        Self::from_state(
            ctx,
            State {
                data: T::default(),
                id,
                fresh: true,
                standing: Standing::Fresh,
                stored_meta: None,
                meta,
                meta_changed: false,
                fields: vec![FieldState::default(); T::FIELDS.len()],
                ops: Vec::new(),
                deletes: Vec::new(),
                id_news: false,
                stale,
                needs_id: false,
                renew_checked: false,
                version: 0,
                degraded: false,
                secret: SecretSlot::default(),
                lost_takes: Vec::new(),
            },
        )
    }

    /// An anonymous session for a request whose store failed: fresh, never
    /// written, never sends or clears an id.
    pub(crate) fn new_degraded(ctx: Arc<Context>, id: SessionId, now: u64) -> Self {
        let session = Self::new_fresh(ctx, id, now, false);
        session.lock().degraded = true;
        session
    }

    /// A stored session; `redirected` when it was reached through the
    /// tombstone of a rotated id (the client must learn the new id).
    pub(crate) fn from_record(
        ctx: Arc<Context>,
        id: SessionId,
        record: Record,
        redirected: bool,
    ) -> Self {
        let fields = stored_fields::<T>(&record.fields);
        let secret = SecretSlot {
            stored: record.fields.get(crate::csrf::CSRF_FIELD).cloned(),
            ..SecretSlot::default()
        };
        Self::from_state(
            ctx,
            State {
                data: T::default(),
                id,
                fresh: false,
                standing: Standing::Stored,
                stored_meta: Some(record.meta),
                meta: record.meta,
                meta_changed: false,
                fields,
                ops: Vec::new(),
                deletes: Vec::new(),
                id_news: redirected,
                stale: false,
                needs_id: false,
                renew_checked: redirected,
                version: 0,
                degraded: false,
                secret,
                lost_takes: Vec::new(),
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
            .filter(|(_, f)| !f.removed && (f.touched || f.stored.is_some()))
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
        self.lock().record(Op::Apply {
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
        state.log(Op::Apply {
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
        state.log(Op::Take {
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
            if f.touched || state.degraded {
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
            state.log(Op::Take {
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
        match told {
            IdWrite::Set(..) => state.id_news = true,
            IdWrite::Clear => state.stale = true,
            IdWrite::Nothing => {}
        }
        if state.lost_takes.contains(&index) {
            state.lost_takes.retain(|i| *i != index);
            return Ok(None);
        }
        Ok(value)
    }

    /// Removes one field from the session (it reads as its default
    /// afterwards): a blind write.
    pub fn remove<V>(&self, field: Field<T, V>) {
        self.lock().record(Op::Remove(field.index()));
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
        self.lock().record(Op::Remove(index));
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
        self.lock().record(Op::Apply {
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
        state.log(Op::Apply {
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
        let old = std::mem::replace(&mut state.id, new_id);
        state.standing = match std::mem::replace(&mut state.standing, Standing::Fresh) {
            Standing::Fresh => Standing::Fresh,
            Standing::Stored => Standing::Rotating {
                from: old,
                grace_ms: 0,
            },
            Standing::Rotating { from, .. } => Standing::Rotating { from, grace_ms: 0 },
        };
        state.meta.id_issued_at = now;
        state.id_news = true;
        state.renew_checked = true;
        // Tokens issued before a sign-in stop working: the next token asked
        // for makes a new secret.
        if state.secret.current().is_some() {
            state.version += 1;
            state.secret = SecretSlot {
                stored: state.secret.stored.take(),
                want: None,
                changed: true,
                changed_at: state.version,
            };
        }
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
        let mut state = self.lock();
        state.forget(new_id, meta);
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
        state.forget(id, meta);
        state.needs_id = true;
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
                state.version += 1;
                state.secret.want = Some(Bytes::copy_from_slice(&secret));
                state.secret.changed = true;
                state.secret.changed_at = state.version;
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
    pub(crate) async fn commit(&self, failed: bool) -> Result<IdWrite, SessionError> {
        let _serial = self.shared.commit.lock().await;
        let ctx = &self.shared.ctx;
        let store: &dyn DynSessionStore = &*ctx.store;
        let now = ctx.clock.now_ms();
        if (failed && !ctx.config.save_on_error) || self.lock().degraded {
            self.lock().drop_pending();
            ctx.observer.commit(Outcome::Discarded);
            return Ok(IdWrite::Nothing);
        }

        let deletes = std::mem::take(&mut self.lock().deletes);
        for (done, id) in deletes.iter().enumerate() {
            if let Err(error) = store.delete_boxed(id).await {
                self.lock()
                    .deletes
                    .splice(0..0, deletes[done..].iter().cloned());
                return Err(error.into());
            }
            ctx.observer.destroyed(id, DestroyCause::Destroy);
        }

        self.prepare(now)?;
        let stored_id = {
            let state = self.lock();
            match &state.standing {
                Standing::Fresh => None,
                Standing::Stored => Some(state.id.clone()),
                Standing::Rotating { from, .. } => Some(from.clone()),
            }
        };
        // Taken only when there is something to write: a read-only commit
        // never waits for another request of the same session. A request
        // that changed the session takes it before planning, so it plans
        // (and encodes its fields) once; one that only turns out to need a
        // touch takes it after planning, then plans again.
        let changing = {
            let state = self.lock();
            state.has_changes() || state.meta_changed
        };
        let mut turn = match &stored_id {
            Some(id) if changing => Some(ctx.stripes.of(id).lock().await),
            _ => None,
        };
        let (mut retries, mut hops) = (0, 0);
        loop {
            let (input, plan, planned) = {
                let mut state = self.lock();
                if state.unchanged_needs_nothing(&ctx.policy, now) {
                    ctx.observer.commit(Outcome::Unchanged);
                    return Ok(state.finish(ctx, now, false));
                }
                let input = state.input()?;
                let plan = plan::plan_write(&ctx.policy, &input, now);
                (input, plan, (state.version, state.ops.len()))
            };
            if turn.is_none() && matches!(plan, Plan::Write(_)) {
                if let Some(id) = &stored_id {
                    turn = Some(ctx.stripes.of(id).lock().await);
                    // Plan again: other tasks may have changed the handle
                    // while this commit waited for its turn.
                    continue;
                }
            }
            let write = match plan {
                Plan::Write(mut write) => {
                    crate::principal::annotate::<T>(&mut write, &input.fields);
                    write
                }
                Plan::Nothing => {
                    ctx.observer.commit(Outcome::Unchanged);
                    return Ok(self.lock().finish(ctx, now, false));
                }
                Plan::TooLarge { size, limit } => {
                    ctx.observer.commit(Outcome::TooLarge);
                    return Err(SessionError::TooLarge { size, limit });
                }
                Plan::Drop(id) => {
                    if let Some(id) = id {
                        store.delete_boxed(&id).await?;
                        ctx.observer.destroyed(&id, DestroyCause::Emptied);
                    }
                    ctx.observer.commit(Outcome::Empty);
                    return Ok(self.lock().emptied());
                }
            };
            let written = store.write_boxed(&write).await?;
            let update = {
                let mut state = self.lock();
                match plan::next_step(&input.standing, &written, retries, hops) {
                    Next::Done => {
                        if ctx.observer.wants_data() {
                            state.decode_all();
                        }
                        ctx.observer.written(&write, &input.fields, &state.data);
                        state.written(&write, input.fields, planned);
                        state.finish(ctx, now, true)
                    }
                    Next::Gone => {
                        ctx.observer.commit(Outcome::Gone);
                        return Ok(state.gone());
                    }
                    Next::Retarget { to, keep_rotation } => {
                        hops += 1;
                        state.retarget(to, keep_rotation);
                        continue;
                    }
                    Next::Replay => {
                        retries += 1;
                        if let Written::Conflict(record) = written {
                            state.replay(record);
                        }
                        continue;
                    }
                    Next::GiveUp => {
                        ctx.observer.commit(Outcome::Conflict);
                        return Err(SessionError::Conflict { retries });
                    }
                }
            };
            crate::principal::after_write::<T>(ctx, &write).await;
            return Ok(update);
        }
    }

    /// Decisions taken once per commit before planning: a new id after
    /// `destroy`, and auto-renewal.
    fn prepare(&self, now: u64) -> Result<(), SessionError> {
        let ctx = &self.shared.ctx;
        let (needs_id, renew) = {
            let state = self.lock();
            let renew = state.standing == Standing::Stored
                && !state.renew_checked
                && state
                    .stored_meta
                    .is_some_and(|m| plan::renew_due(&ctx.policy, m.id_issued_at, now));
            (state.needs_id && state.has_changes(), renew)
        };
        if needs_id {
            let id = ctx.ids.generate()?;
            let mut state = self.lock();
            state.id = id;
            state.needs_id = false;
        }
        if renew {
            let new_id = ctx.ids.generate()?;
            let mut state = self.lock();
            let old = std::mem::replace(&mut state.id, new_id);
            state.standing = Standing::Rotating {
                from: old,
                grace_ms: ctx.policy.grace_ms,
            };
            state.meta.id_issued_at = now;
            state.id_news = true;
            state.renew_checked = true;
        }
        Ok(())
    }
}

/// The state of `T`'s fields as the store holds them in `stored`, none
/// decoded yet.
fn stored_fields<T: SessionData>(stored: &Fields) -> Vec<FieldState> {
    T::FIELDS
        .iter()
        .map(|info| {
            let stored = stored.get(info.name).cloned();
            FieldState {
                pending: stored.is_some(),
                stored,
                ..FieldState::default()
            }
        })
        .collect()
}

impl<T: SessionData> State<T> {
    /// Decodes field `index` from its stored bytes if that has not happened
    /// yet. A field that no longer decodes as its type becomes its default,
    /// with a warning that names the field and the kind of error, never the
    /// stored value (once per load).
    fn decode(&mut self, index: usize) {
        let Some(field) = self.fields.get_mut(index).filter(|f| f.pending) else {
            return;
        };
        field.pending = false;
        let Some(bytes) = &field.stored else {
            return;
        };
        if let Err(error) = self.data.decode_field(index, bytes) {
            let info = &T::FIELDS[index];
            tracing::warn!(
                field = info.rust_name,
                stored_as = info.name,
                error = error.kind(),
                "stored session field no longer decodes as its type; using the field's default"
            );
            self.data.reset_field(index);
        }
    }

    /// Decodes every field not decoded yet (whole-struct access).
    fn decode_all(&mut self) {
        for index in 0..self.fields.len() {
            self.decode(index);
        }
    }

    /// Applies a new change and keeps it for replay.
    fn record(&mut self, op: Op<T>) {
        self.apply(&op);
        self.ops.push(op);
    }

    /// Keeps a change that was already applied (its closure ran for the
    /// handler's return value).
    fn log(&mut self, op: Op<T>) {
        self.mark(&op);
        self.ops.push(op);
    }

    fn apply(&mut self, op: &Op<T>) {
        // What the change reads must be decoded first; what it overwrites
        // needs no decoding (`mark` settles it).
        match op {
            Op::Apply {
                target: Some(index),
                reads: true,
                ..
            }
            | Op::Take { index, .. } => self.decode(*index),
            Op::Apply {
                target: None,
                reads: true,
                ..
            } => self.decode_all(),
            Op::Apply { .. } | Op::Remove(_) => {}
        }
        match op {
            Op::Apply { f, .. } => f(&mut self.data),
            Op::Remove(index) => self.data.reset_field(*index),
            Op::Take { index, seen, once } => {
                let mut now = Vec::new();
                let unchanged = match seen {
                    Some(seen) => self
                        .data
                        .encode_field(*index, &mut now)
                        .is_ok_and(|()| now == *seen),
                    None => true,
                };
                if !unchanged {
                    // A concurrent request put a newer value there (or
                    // took it): keep it.
                    if *once {
                        self.lost_takes.push(*index);
                    }
                    return;
                }
                self.data.reset_field(*index);
            }
        }
        self.mark(op);
    }

    fn mark(&mut self, op: &Op<T>) {
        let (target, reads, removes) = match op {
            Op::Apply { target, reads, .. } => (*target, *reads, false),
            Op::Remove(index) => (Some(*index), false, true),
            // A `take_once` writes the field's default (`None`) rather than
            // removing it: a removal that empties the session deletes it,
            // unconditionally, which would lose a concurrent write.
            Op::Take { index, once, .. } => (Some(*index), true, !*once),
        };
        let range = match target {
            Some(index) => index..index + 1,
            None => 0..self.fields.len(),
        };
        self.version += 1;
        let version = self.version;
        for field in &mut self.fields[range] {
            field.touched_at = version;
            if reads && !field.blind {
                field.expect = true;
            }
            if !reads {
                field.blind = true;
            }
            field.touched = true;
            field.removed = removes;
            // The op decided the field's value: the stored bytes are no
            // longer to be decoded over it.
            field.pending = false;
        }
    }

    fn has_changes(&self) -> bool {
        self.secret.changed || self.fields.iter().any(|f| f.touched)
    }

    /// A read-only commit that needs no write (see
    /// [`plan::unchanged_needs_nothing`]), decided without building the
    /// planner's input.
    fn unchanged_needs_nothing(&self, policy: &plan::Policy, now: u64) -> bool {
        !self.has_changes()
            && plan::unchanged_needs_nothing(
                policy,
                &self.standing,
                self.stored_meta.as_ref(),
                self.meta_changed,
                self.secret.stored.is_some() || self.fields.iter().any(|f| f.stored.is_some()),
                now,
            )
    }

    /// `reset` / `destroy`: the stored session is deleted at commit; the
    /// session starts over empty under `id`.
    fn forget(&mut self, id: SessionId, meta: Meta) {
        match std::mem::replace(&mut self.standing, Standing::Fresh) {
            Standing::Fresh => {}
            Standing::Stored => self.deletes.push(self.id.clone()),
            Standing::Rotating { from, .. } => self.deletes.push(from),
        }
        self.data = T::default();
        self.fields = vec![FieldState::default(); T::FIELDS.len()];
        self.secret = SecretSlot::default();
        self.ops.clear();
        self.id = id;
        self.meta = meta;
        self.meta_changed = false;
        self.stored_meta = None;
        self.fresh = true;
        self.id_news = false;
        self.stale = true;
        self.needs_id = false;
    }

    /// What the planner needs, with each field's wanted bytes encoded.
    fn input(&mut self) -> Result<Input, SessionError> {
        let mut defaults: Option<T> = None;
        let mut fields = Vec::with_capacity(self.fields.len());
        for (index, info) in T::FIELDS.iter().enumerate() {
            let state = &self.fields[index];
            let want = if state.removed {
                None
            } else if !state.touched {
                state.stored.clone()
            } else {
                let mut now = Vec::new();
                self.data.encode_field(index, &mut now)?;
                if state.stored.is_none() {
                    // A field the store does not hold joins only if it now
                    // differs from its default: a no-op creates nothing.
                    let mut default = Vec::new();
                    defaults
                        .get_or_insert_with(T::default)
                        .encode_field(index, &mut default)?;
                    (now != default).then(|| Bytes::from(now))
                } else {
                    Some(Bytes::from(now))
                }
            };
            fields.push(FieldPlan {
                name: info.name,
                stored: state.stored.clone(),
                want,
                expect: state.expect,
            });
        }
        // The secret, last (fields keep their `T::FIELDS` positions). A new
        // secret is written only where none is stored yet, so tokens handed
        // out by a concurrent request stay valid.
        let secret = &self.secret;
        fields.push(FieldPlan {
            name: crate::csrf::CSRF_FIELD,
            stored: secret.stored.clone(),
            want: secret.current().cloned(),
            expect: secret.changed && secret.stored.is_none() && secret.want.is_some(),
        });
        Ok(Input {
            id: self.id.clone(),
            standing: self.standing.clone(),
            stored_meta: self.stored_meta,
            meta: self.meta,
            meta_changed: self.meta_changed,
            fields,
        })
    }

    /// The write applied: the store now holds `fields`' wanted bytes.
    /// Changes made by other tasks after the plan (`planned`: the change
    /// count and number of operations then) stay pending.
    fn written(&mut self, write: &Write, mut fields: Vec<FieldPlan>, planned: (u64, usize)) {
        let (version, ops) = planned;
        if fields.len() > self.fields.len() {
            if let Some(secret) = fields.pop() {
                self.secret.stored = secret.want;
                if self.secret.changed_at <= version {
                    self.secret.changed = false;
                    self.secret.want = None;
                }
            }
        }
        for (state, plan) in self.fields.iter_mut().zip(fields) {
            state.stored = plan.want;
            if state.touched_at <= version {
                *state = FieldState {
                    stored: state.stored.take(),
                    pending: state.pending,
                    ..FieldState::default()
                };
            }
        }
        self.ops.drain(..ops.min(self.ops.len()));
        self.standing = Standing::Stored;
        self.meta = write.meta;
        self.meta_changed = false;
        self.stored_meta = Some(match (&write.kind, self.stored_meta) {
            (WriteKind::Update, Some(mut stored)) if !write.meta_changed => {
                stored.last_access = write.now;
                stored
            }
            _ => write.meta,
        });
    }

    /// What the client is told after a commit that wrote (`wrote`) or did
    /// not need to write.
    fn finish(&mut self, ctx: &Context, now: u64, wrote: bool) -> IdWrite {
        if self.standing == Standing::Fresh {
            // Nothing stored: clear an id the client holds in vain.
            let stale = std::mem::take(&mut self.stale);
            return if stale {
                IdWrite::Clear
            } else {
                IdWrite::Nothing
            };
        }
        let id_news = std::mem::take(&mut self.id_news);
        self.stale = false;
        plan::client_write(&ctx.policy, &self.id, &self.meta, now, wrote, id_news)
    }

    /// The session holds no data any more and was deleted (or never stored).
    fn emptied(&mut self) -> IdWrite {
        let had = self.standing != Standing::Fresh || self.stale;
        self.standing = Standing::Fresh;
        self.stored_meta = None;
        self.ops.clear();
        for field in &mut self.fields {
            *field = FieldState::default();
        }
        self.secret = SecretSlot::default();
        self.stale = false;
        self.id_news = false;
        if had {
            IdWrite::Clear
        } else {
            IdWrite::Nothing
        }
    }

    /// The store no longer holds the session (destroyed, revoked or
    /// regenerated away by a concurrent request, or expired): nothing of this
    /// request is kept, so it cannot bring the session back. The client is
    /// told nothing: the request that ended the session already told it (a
    /// logout cleared the cookie, a login set a new id, which a removal
    /// cookie here would overwrite); a client still holding the dead id gets
    /// a removal cookie on its next request.
    fn gone(&mut self) -> IdWrite {
        for op in &self.ops {
            if let Op::Take {
                index, once: true, ..
            } = op
            {
                self.lost_takes.push(*index);
            }
        }
        self.data = T::default();
        self.standing = Standing::Fresh;
        self.emptied();
        IdWrite::Nothing
    }

    /// A concurrent request rotated the session to `to`.
    fn retarget(&mut self, to: SessionId, keep_rotation: bool) {
        if keep_rotation {
            self.standing = Standing::Rotating {
                from: to,
                grace_ms: 0,
            };
        } else {
            self.id = to;
            self.standing = Standing::Stored;
        }
        self.id_news = true;
        self.renew_checked = true;
    }

    /// Fields changed under this request: start again from what the store
    /// holds now and re-apply this request's changes in order.
    fn replay(&mut self, record: Record) {
        self.data = T::default();
        self.fields = stored_fields::<T>(&record.fields);
        self.lost_takes.clear();
        let stored_secret = record.fields.get(crate::csrf::CSRF_FIELD).cloned();
        if self.secret.changed && self.secret.stored.is_none() && stored_secret.is_some() {
            // A concurrent request created the secret first: keep theirs
            // (tokens it handed out stay valid; this request's do not).
            self.secret.changed = false;
            self.secret.want = None;
        }
        self.secret.stored = stored_secret;
        let idle = self.meta.idle_timeout_ms;
        let issued = self.meta.id_issued_at;
        self.meta = record.meta;
        if self.meta_changed {
            self.meta.idle_timeout_ms = idle;
        }
        if matches!(self.standing, Standing::Rotating { .. }) {
            self.meta.id_issued_at = issued;
        }
        self.stored_meta = Some(record.meta);
        let ops = std::mem::take(&mut self.ops);
        for op in &ops {
            self.apply(op);
        }
        self.ops = ops;
    }

    /// A failed request: nothing of it is kept.
    fn drop_pending(&mut self) {
        self.ops.clear();
        self.deletes.clear();
        self.secret.changed = false;
        self.secret.want = None;
        for field in &mut self.fields {
            field.touched = false;
            field.removed = false;
            field.expect = false;
            field.blind = false;
        }
        self.meta_changed = false;
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

//! What one request's session holds between load and commit: the data, what
//! the store holds of each field, the change log replayed after a conflict,
//! and where the session and the client stand. Every transition here is a
//! plain method without I/O; the commit (`commit.rs`) decides which to run,
//! the handle (`session.rs`) runs them under its lock.

use std::sync::Arc;

use bytes::Bytes;

use crate::data::SessionData;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::plan::{self, FieldPlan, IdWrite, Input, PrincipalPart, Rules, Standing};
use crate::record::{Fields, Meta, Record};
use crate::store::{Write, WriteKind};

/// A change made in this request, kept so it can be replayed on fresher
/// data after a conflict.
pub(crate) enum Change<T> {
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
    /// `once`: a `Session::take_once`, whose value the handler gets only if
    /// this removal is the one that applies.
    Take {
        index: usize,
        seen: Option<Vec<u8>>,
        once: bool,
    },
}

impl<T> Clone for Change<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Apply { target, reads, f } => Self::Apply {
                target: *target,
                reads: *reads,
                f: Arc::clone(f),
            },
            Self::Remove(index) => Self::Remove(*index),
            Self::Take { index, seen, once } => Self::Take {
                index: *index,
                seen: seen.clone(),
                once: *once,
            },
        }
    }
}

/// How this request changed one field (or the CSRF secret).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Not changed in this request.
    #[default]
    None,
    /// Changed; `at` is the change count of its last change.
    Changed {
        /// Decided by the field's first change in the request.
        basis: Basis,
        /// The last change removed it.
        removed: bool,
        at: u64,
    },
}

/// What a field's new value was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// The first change read the loaded value: the write checks that the
    /// store still holds it (read-modify-write).
    Stored,
    /// The first change overwrote it without reading: a blind write.
    Overwritten,
}

/// What the session knows about one field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldState {
    /// The bytes in the store (as loaded or last written).
    pub(crate) stored: Option<Bytes>,
    pub(crate) edit: Edit,
    /// `stored` is not decoded into the data yet: fields are decoded on
    /// first access, so a request pays only for the fields it uses.
    pub(crate) pending: bool,
}

impl FieldState {
    /// Whether the session holds the field after this request's changes.
    pub(crate) fn present(&self) -> bool {
        match self.edit {
            Edit::None => self.stored.is_some(),
            Edit::Changed { removed, .. } => !removed,
        }
    }
}

/// The session's CSRF secret, kept beside the fields as the reserved
/// stored field `@csrf` (`csrf.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretSlot {
    /// The bytes in the store.
    pub(crate) stored: Option<Bytes>,
    pub(crate) edit: SecretEdit,
}

/// A change of the CSRF secret in this request.
#[derive(Debug, Clone, Default)]
pub(crate) enum SecretEdit {
    #[default]
    None,
    /// The session should hold `want` after the commit (`None`: no secret);
    /// `at` is the change count then.
    Set { want: Option<Bytes>, at: u64 },
}

impl SecretSlot {
    /// The secret the session holds now.
    pub(crate) fn current(&self) -> Option<&Bytes> {
        match &self.edit {
            SecretEdit::None => self.stored.as_ref(),
            SecretEdit::Set { want, .. } => want.as_ref(),
        }
    }

    fn changed(&self) -> bool {
        matches!(self.edit, SecretEdit::Set { .. })
    }

    /// A new secret made in this request where none is stored: written only
    /// if the store still has none, so tokens handed out by a concurrent
    /// request stay valid.
    fn creates(&self) -> bool {
        self.stored.is_none() && matches!(self.edit, SecretEdit::Set { want: Some(_), .. })
    }
}

/// What the client holds, against the session's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// Nothing to tell it unless the commit writes.
    InSync,
    /// It holds another id than the session's (a rotation, a redirect
    /// through a rotated id's tombstone).
    MustLearnId,
    /// It presented an id that resolves to nothing now (unknown, expired,
    /// reset, destroyed, emptied): cleared unless a session is stored.
    HoldsDeadId,
}

/// How a request reached its stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// Under the id the client presented, as it should present it.
    Directly,
    /// Through the tombstone of a rotated id: the client must learn the new
    /// id, and the id is not renewed again in this request.
    ThroughTombstone,
    /// Under the id the client presented, but in a form it must replace (a
    /// signed id under a fallback key, or unsigned in a migration window):
    /// the client is sent its id again.
    WithStaleToken,
}

/// Whether the session's id may still change before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdFate {
    /// Auto-renewal is checked at the next commit.
    Unchecked,
    /// Renewal was decided (rotated, redirected, regenerated): no renewal.
    Settled,
    /// `destroy`: a new id is made before data is stored again.
    Replace,
}

/// One request's session.
pub(crate) struct State<T> {
    pub(crate) data: T,
    /// The id the session has (after this request's rotation, if any).
    pub(crate) id: SessionId,
    /// Created in this request (no stored session was found).
    pub(crate) fresh: bool,
    pub(crate) standing: Standing,
    /// The metadata as the store holds it.
    pub(crate) stored_meta: Option<Meta>,
    pub(crate) meta: Meta,
    /// The metadata other than `last_access` changed in this request.
    pub(crate) meta_changed: bool,
    pub(crate) fields: Vec<FieldState>,
    pub(crate) ops: Vec<Change<T>>,
    /// Ids whose records are deleted at commit (reset, destroy), oldest first.
    pub(crate) deletes: Vec<SessionId>,
    pub(crate) client: Client,
    pub(crate) id_fate: IdFate,
    /// Counts changes, so a commit can tell the changes it wrote from those
    /// made by other tasks while its write was in flight.
    pub(crate) version: u64,
    /// Made because the store failed, under `FailurePolicy::Anonymous`:
    /// never written, never sends an id (`degraded.rs`).
    pub(crate) degraded: bool,
    pub(crate) secret: SecretSlot,
    /// Fields whose `take_once` lost to a concurrent request (found changed
    /// at a replay, or the session gone).
    pub(crate) lost_takes: Vec<usize>,
}

/// The change count and the number of logged operations when a write was
/// planned: what the write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) version: u64,
    pub(crate) ops: usize,
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
                edit: Edit::None,
            }
        })
        .collect()
}

impl<T: SessionData> State<T> {
    /// A session no store holds; `stale` when the client presented an id
    /// that resolves to nothing.
    pub(crate) fn fresh(id: SessionId, meta: Meta, stale: bool) -> Self {
        let fields = vec![FieldState::default(); T::FIELDS.len()];
        Self {
            client: if stale {
                Client::HoldsDeadId
            } else {
                Client::InSync
            },
            ..Self::unstored(id, meta, fields)
        }
    }

    /// A stored session, reached as `reached` says.
    pub(crate) fn stored(id: SessionId, record: Record, reached: Reached) -> Self {
        let secret = SecretSlot {
            stored: record.fields.get(crate::csrf::CSRF_FIELD).cloned(),
            edit: SecretEdit::None,
        };
        let (client, id_fate) = match reached {
            Reached::Directly => (Client::InSync, IdFate::Unchecked),
            Reached::ThroughTombstone => (Client::MustLearnId, IdFate::Settled),
            Reached::WithStaleToken => (Client::MustLearnId, IdFate::Unchecked),
        };
        Self {
            fresh: false,
            standing: Standing::Stored,
            stored_meta: Some(record.meta),
            client,
            id_fate,
            secret,
            ..Self::unstored(id, record.meta, stored_fields::<T>(&record.fields))
        }
    }

    /// The parts both constructors share: no data decoded, nothing changed,
    /// not stored.
    fn unstored(id: SessionId, meta: Meta, fields: Vec<FieldState>) -> Self {
        Self {
            data: T::default(),
            id,
            fresh: true,
            standing: Standing::Fresh,
            stored_meta: None,
            meta,
            meta_changed: false,
            fields,
            ops: Vec::new(),
            deletes: Vec::new(),
            client: Client::InSync,
            id_fate: IdFate::Unchecked,
            version: 0,
            degraded: false,
            secret: SecretSlot::default(),
            lost_takes: Vec::new(),
        }
    }

    /// Decodes field `index` from its stored bytes if that has not happened
    /// yet. A field that no longer decodes as its type becomes its default,
    /// with a warning that names the field and the kind of error, never the
    /// stored value (once per load).
    pub(crate) fn decode(&mut self, index: usize) {
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
    pub(crate) fn decode_all(&mut self) {
        for index in 0..self.fields.len() {
            self.decode(index);
        }
    }

    /// Applies a new change and keeps it for replay.
    pub(crate) fn record(&mut self, op: Change<T>) {
        self.apply(&op);
        self.ops.push(op);
    }

    /// Keeps a change that was already applied (its closure ran for the
    /// handler's return value).
    pub(crate) fn log(&mut self, op: Change<T>) {
        self.mark(&op);
        self.ops.push(op);
    }

    fn apply(&mut self, op: &Change<T>) {
        // What the change reads must be decoded first; what it overwrites
        // needs no decoding (`mark` settles it).
        match op {
            Change::Apply {
                target: Some(index),
                reads: true,
                ..
            }
            | Change::Take { index, .. } => self.decode(*index),
            Change::Apply {
                target: None,
                reads: true,
                ..
            } => self.decode_all(),
            Change::Apply { .. } | Change::Remove(_) => {}
        }
        match op {
            Change::Apply { f, .. } => f(&mut self.data),
            Change::Remove(index) => self.data.reset_field(*index),
            Change::Take { index, seen, once } => {
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

    fn mark(&mut self, op: &Change<T>) {
        let (target, reads, removes) = match op {
            Change::Apply { target, reads, .. } => (*target, *reads, false),
            Change::Remove(index) => (Some(*index), false, true),
            // A `take_once` writes the field's default (`None`) rather than
            // removing it: a removal that empties the session deletes it,
            // unconditionally, which would lose a concurrent write.
            Change::Take { index, once, .. } => (Some(*index), true, !*once),
        };
        let range = match target {
            Some(index) => index..index + 1,
            None => 0..self.fields.len(),
        };
        self.version += 1;
        let at = self.version;
        for field in &mut self.fields[range] {
            let basis = match field.edit {
                Edit::Changed { basis, .. } => basis,
                Edit::None if reads => Basis::Stored,
                Edit::None => Basis::Overwritten,
            };
            field.edit = Edit::Changed {
                basis,
                removed: removes,
                at,
            };
            // The op decided the field's value: the stored bytes are no
            // longer to be decoded over it.
            field.pending = false;
        }
    }

    /// A field or the secret changed in this request.
    pub(crate) fn has_changes(&self) -> bool {
        self.secret.changed() || self.fields.iter().any(|f| f.edit != Edit::None)
    }

    /// The store holds data of this session (a field or the secret).
    pub(crate) fn has_stored_data(&self) -> bool {
        self.secret.stored.is_some() || self.fields.iter().any(|f| f.stored.is_some())
    }

    /// The id the store holds the session under, if any.
    pub(crate) fn stored_id(&self) -> Option<&SessionId> {
        self.standing.stored_id(&self.id)
    }

    /// Whether auto-renewal rotates the id at this commit.
    pub(crate) fn renewal_due(&self, policy: &Rules, now: u64) -> bool {
        self.standing == Standing::Stored
            && self.id_fate == IdFate::Unchecked
            && self
                .stored_meta
                .is_some_and(|m| plan::renew_due(policy, m.id_issued_at, now))
    }

    /// Whether the commit must make a new id first (`destroy`, then new data).
    pub(crate) fn needs_new_id(&self) -> bool {
        self.id_fate == IdFate::Replace && self.has_changes()
    }

    /// The new id after `destroy` (see [`State::needs_new_id`]).
    pub(crate) fn replace_id(&mut self, id: SessionId) {
        self.id = id;
        self.id_fate = IdFate::Settled;
    }

    /// Moves the session to `to` at the next write: auto-renewal
    /// (`grace_ms` > 0, the old id resolves a while) or `regenerate` (0).
    pub(crate) fn rotate(&mut self, to: SessionId, grace_ms: u64, now: u64) {
        let old = std::mem::replace(&mut self.id, to);
        self.standing = match std::mem::replace(&mut self.standing, Standing::Fresh) {
            Standing::Fresh => Standing::Fresh,
            Standing::Stored => Standing::Rotating {
                from: old,
                grace_ms,
            },
            Standing::Rotating { from, .. } => Standing::Rotating { from, grace_ms },
        };
        self.meta.id_issued_at = now;
        if self.standing != Standing::Fresh {
            self.client = Client::MustLearnId;
        }
        self.id_fate = IdFate::Settled;
    }

    /// `regenerate` also retires the CSRF secret: tokens issued before a
    /// sign-in stop working, the next token asked for makes a new secret.
    pub(crate) fn retire_secret(&mut self) {
        if self.secret.current().is_some() {
            self.version += 1;
            self.secret.edit = SecretEdit::Set {
                want: None,
                at: self.version,
            };
        }
    }

    /// A new CSRF secret for this session.
    pub(crate) fn new_secret(&mut self, secret: Bytes) {
        self.version += 1;
        self.secret.edit = SecretEdit::Set {
            want: Some(secret),
            at: self.version,
        };
    }

    /// `reset` / `destroy` (`replace`: the new id is made at commit, only
    /// if the session gets data again): the stored session is deleted at
    /// commit; the session starts over empty under `id`.
    pub(crate) fn forget(&mut self, id: SessionId, meta: Meta, replace: bool) {
        if let Some(stored) = self.stored_id().cloned() {
            self.deletes.push(stored);
        }
        self.standing = Standing::Fresh;
        self.data = T::default();
        self.fields = vec![FieldState::default(); T::FIELDS.len()];
        self.secret = SecretSlot::default();
        self.ops.clear();
        self.id = id;
        self.meta = meta;
        self.meta_changed = false;
        self.stored_meta = None;
        self.fresh = true;
        self.client = Client::HoldsDeadId;
        self.id_fate = if replace {
            IdFate::Replace
        } else {
            IdFate::Settled
        };
    }

    /// A commit inside the request (`take_once`) told the client something:
    /// the request's own commit tells it.
    pub(crate) fn defer_to_request(&mut self, told: &IdWrite) {
        match told {
            IdWrite::Set(..) => self.client = Client::MustLearnId,
            IdWrite::Clear => self.client = Client::HoldsDeadId,
            IdWrite::Nothing => {}
        }
    }

    /// What the planner needs, with each field's wanted bytes encoded and
    /// the principal decision made.
    pub(crate) fn input(&mut self) -> Result<Input, SessionError> {
        let mut defaults: Option<T> = None;
        let mut fields = Vec::with_capacity(self.fields.len() + 1);
        for (index, info) in T::FIELDS.iter().enumerate() {
            let state = &self.fields[index];
            let want = match state.edit {
                Edit::Changed { removed: true, .. } => None,
                Edit::None => state.stored.clone(),
                Edit::Changed { .. } => {
                    let mut now = Vec::new();
                    self.data.encode_field(index, &mut now)?;
                    if state.stored.is_none() {
                        // A field the store does not hold joins only if it
                        // now differs from its default: a no-op creates nothing.
                        let mut default = Vec::new();
                        defaults
                            .get_or_insert_with(T::default)
                            .encode_field(index, &mut default)?;
                        (now != default).then(|| Bytes::from(now))
                    } else {
                        Some(Bytes::from(now))
                    }
                }
            };
            let expect = matches!(
                state.edit,
                Edit::Changed {
                    basis: Basis::Stored,
                    ..
                }
            );
            fields.push(FieldPlan {
                name: info.name,
                stored: state.stored.clone(),
                want,
                expect,
            });
        }
        let principal = T::PRINCIPAL.and_then(|index| {
            let field = &fields[index];
            let write = crate::principal::principal_write::<T>(
                index,
                field.stored.as_deref(),
                field.want.as_deref(),
            )?;
            Some(PrincipalPart {
                write,
                field: index,
            })
        });
        // The secret, last (fields keep their `T::FIELDS` positions).
        let secret = &self.secret;
        fields.push(FieldPlan {
            name: crate::csrf::CSRF_FIELD,
            stored: secret.stored.clone(),
            want: secret.current().cloned(),
            expect: secret.creates(),
        });
        Ok(Input {
            id: self.id.clone(),
            standing: self.standing.clone(),
            stored_meta: self.stored_meta,
            meta: self.meta,
            meta_changed: self.meta_changed,
            fields,
            principal,
        })
    }

    /// The write applied: the store now holds `fields`' wanted bytes.
    /// Changes made by other tasks after the plan stay pending.
    pub(crate) fn written(&mut self, write: &Write, mut fields: Vec<FieldPlan>, planned: Planned) {
        let secret = if fields.len() > self.fields.len() {
            fields.pop()
        } else {
            None
        };
        if let Some(secret) = secret {
            self.secret.stored = secret.want;
            if let SecretEdit::Set { at, .. } = self.secret.edit {
                if at <= planned.version {
                    self.secret.edit = SecretEdit::None;
                }
            }
        }
        for (state, plan) in self.fields.iter_mut().zip(fields) {
            state.stored = plan.want;
            if let Edit::Changed { at, .. } = state.edit {
                if at <= planned.version {
                    state.edit = Edit::None;
                }
            }
        }
        self.ops.drain(..planned.ops.min(self.ops.len()));
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
    pub(crate) fn finish(&mut self, policy: &Rules, now: u64, wrote: bool) -> IdWrite {
        if self.standing == Standing::Fresh {
            // Nothing stored: clear an id the client holds in vain.
            if self.client == Client::HoldsDeadId {
                self.client = Client::InSync;
                return IdWrite::Clear;
            }
            return IdWrite::Nothing;
        }
        let id_news = self.client == Client::MustLearnId;
        self.client = Client::InSync;
        plan::client_write(policy, &self.id, &self.meta, now, wrote, id_news)
    }

    /// The session holds no data any more and was deleted (or never stored).
    pub(crate) fn emptied(&mut self) -> IdWrite {
        let had = self.standing != Standing::Fresh || self.client == Client::HoldsDeadId;
        self.standing = Standing::Fresh;
        self.stored_meta = None;
        self.ops.clear();
        for field in &mut self.fields {
            *field = FieldState::default();
        }
        self.secret = SecretSlot::default();
        self.client = Client::InSync;
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
    pub(crate) fn gone(&mut self) -> IdWrite {
        for op in &self.ops {
            if let Change::Take {
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
    pub(crate) fn retarget(&mut self, to: SessionId, keep_rotation: bool) {
        if keep_rotation {
            self.standing = Standing::Rotating {
                from: to,
                grace_ms: 0,
            };
        } else {
            self.id = to;
            self.standing = Standing::Stored;
        }
        self.client = Client::MustLearnId;
        self.id_fate = IdFate::Settled;
    }

    /// Fields changed under this request: start again from what the store
    /// holds now and re-apply this request's changes in order.
    pub(crate) fn replay(&mut self, record: Record) {
        self.data = T::default();
        self.fields = stored_fields::<T>(&record.fields);
        self.lost_takes.clear();
        let stored_secret = record.fields.get(crate::csrf::CSRF_FIELD).cloned();
        if self.secret.creates() && stored_secret.is_some() {
            // A concurrent request created the secret first: keep theirs
            // (tokens it handed out stay valid; this request's do not).
            self.secret.edit = SecretEdit::None;
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

    /// Whether this commit's changes may be written by the commit holding
    /// the turn (group commit, `group.rs`): only changes of fields of a
    /// session stored under the id the client holds, with nothing else to
    /// decide (no delete, id change, metadata, CSRF secret or `take`, whose
    /// outcomes belong to this request alone). A changed principal field is
    /// written like any field: the holder's write keeps the per-user index
    /// (and `maxSessionsPerUser`) as the waiter's own would.
    pub(crate) fn foldable(&self) -> bool {
        self.standing == Standing::Stored
            && self.deletes.is_empty()
            && self.id_fate != IdFate::Replace
            && self.client == Client::InSync
            && !self.meta_changed
            && !self.secret.changed()
            && self.lost_takes.is_empty()
            && self.has_changes()
            && self.ops.iter().all(|op| !matches!(op, Change::Take { .. }))
    }

    /// Whether this commit may write other commits' changes with its own:
    /// it writes the session where it is stored, under the same id.
    pub(crate) fn gathers(&self) -> bool {
        self.standing == Standing::Stored
            && self.deletes.is_empty()
            && self.id_fate != IdFate::Replace
    }

    /// What this commit's write covers, for a commit that posts its changes.
    pub(crate) fn planned(&self) -> Planned {
        Planned {
            version: self.version,
            ops: self.ops.len(),
        }
    }

    /// The session as the store holds it (as loaded or last written), if
    /// stored: its metadata, `T`'s fields and the CSRF secret.
    pub(crate) fn stored_record(&self) -> Option<Record> {
        let meta = self.stored_meta?;
        let mut fields = Fields::with_capacity(self.fields.len() + 1);
        for (info, field) in T::FIELDS.iter().zip(&self.fields) {
            if let Some(bytes) = &field.stored {
                fields.insert(Bytes::from_static(info.name.as_bytes()), bytes.clone());
            }
        }
        if let Some(secret) = &self.secret.stored {
            fields.insert(
                Bytes::from_static(crate::csrf::CSRF_FIELD.as_bytes()),
                secret.clone(),
            );
        }
        Some(Record { meta, fields })
    }

    /// A write in this process left `record` while this commit waited: plan
    /// on it rather than on the older load (replaying this request's
    /// changes, as after a conflict) if any field differs.
    pub(crate) fn rebase(&mut self, record: Record) {
        let differs = T::FIELDS
            .iter()
            .zip(&self.fields)
            .any(|(info, field)| record.fields.get(info.name) != field.stored.as_ref())
            || record.fields.get(crate::csrf::CSRF_FIELD) != self.secret.stored.as_ref();
        if differs {
            self.replay(record);
        }
    }

    /// Adds changes another commit posted (group commit) after this
    /// request's own, as if made here ([`State::unfold`] takes them out).
    pub(crate) fn fold_in(&mut self, ops: &[Change<T>]) {
        for op in ops {
            self.record(op.clone());
        }
    }

    /// Drops the changes folded in after the first `own` (the write for
    /// them did not happen): this request's changes are replayed alone on
    /// what the store holds.
    pub(crate) fn unfold(&mut self, own: usize) {
        if self.ops.len() <= own {
            return;
        }
        self.ops.truncate(own);
        if let Some(record) = self.stored_record() {
            self.replay(record);
        }
    }

    /// Another commit wrote this commit's changes (those `planned` covers)
    /// with its own: the store now holds `record` under `id`. Later changes
    /// stay pending, replayed on it.
    pub(crate) fn absorbed(&mut self, id: SessionId, record: Record, planned: Planned) {
        self.ops.drain(..planned.ops.min(self.ops.len()));
        if id != self.id {
            self.id = id;
            self.client = Client::MustLearnId;
            self.id_fate = IdFate::Settled;
        }
        self.standing = Standing::Stored;
        self.replay(record);
    }

    /// A failed request (or a degraded session): nothing of it is kept.
    pub(crate) fn drop_pending(&mut self) {
        self.ops.clear();
        self.deletes.clear();
        self.secret.edit = SecretEdit::None;
        for field in &mut self.fields {
            field.edit = Edit::None;
        }
        self.meta_changed = false;
    }
}

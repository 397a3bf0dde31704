//! The commit as a state machine that does no I/O.
//!
//! [`Commit::step`] takes the session's [`State`], the answer to the action
//! it handed out last, and hands out the next [`Action`]: delete an id, make
//! an id, wait for the session's turn, write, report the applied write,
//! evict over `maxSessionsPerUser`, or finish with what the client is told.
//! The driver (`Session::commit`) executes each action against the store,
//! the id generator, the stripe lock and the observer, and feeds the answer
//! back; it decides nothing. The store's answers are interpreted here with
//! the pure planner (`plan.rs`), so every transition is unit-tested below
//! without a store or a runtime.

use crate::data::SessionData;
use crate::error::SessionError;
use crate::events::DestroyCause;
use crate::id::{GenerateError, SessionId};
use crate::lifecycle::state::{Planned, State};
use crate::metrics::CommitOutcome;
use crate::plan::{self, FieldPlan, IdWrite, Next, Plan, Rules, Standing};
use crate::principal::{Principal, PrincipalWrite, SessionHandle};
use crate::store::{StoreError, Write, WriteKind, Written};

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Action<'a> {
    /// Delete the record stored under `id`; answer [`Answer::Deleted`]. On
    /// success the driver reports the destruction with `cause`.
    Delete { id: SessionId, cause: DestroyCause },
    /// Make a new id; answer [`Answer::NewId`].
    NewId,
    /// Wait for this session's turn (the manager's stripe lock, held until
    /// the commit ends); answer [`Answer::TurnTaken`].
    TakeTurn(SessionId),
    /// Send this write to the store; answer [`Answer::Written`].
    Write(&'a Write),
    /// The write applied: report it (with the planned fields) to the
    /// observer; answer [`Answer::Reported`].
    Report {
        write: &'a Write,
        fields: &'a [FieldPlan],
    },
    /// `maxSessionsPerUser`: revoke `principal`'s least recently used
    /// sessions beyond `cap`, never `current`; answer [`Answer::Evicted`].
    Evict {
        principal: &'a Principal,
        current: SessionHandle,
        cap: usize,
        now: u64,
    },
    /// The commit is over.
    Finish(Finish),
}

/// How a commit ended.
#[derive(Debug)]
pub(crate) enum Finish {
    /// The write applied (already reported); tell the client this.
    Wrote(IdWrite),
    /// Nothing was written (`Discarded`, `Unchanged`, `Empty`, `Gone`);
    /// report the outcome, tell the client this.
    Quiet(CommitOutcome, IdWrite),
    /// Refused (`TooLarge`, `Conflict`): report the outcome, fail.
    Refused(CommitOutcome, SessionError),
    /// The store, the codec or the id generator failed; the changes stay
    /// pending.
    Failed(SessionError),
}

/// The answer to the last action.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The first step.
    Start,
    Deleted(Result<(), StoreError>),
    NewId(Result<SessionId, GenerateError>),
    TurnTaken,
    Written(Result<Written, StoreError>),
    Reported,
    Evicted,
}

/// Where the commit is; each phase but `Done` stands for the action handed
/// out in it.
#[derive(Debug)]
enum Phase {
    Start,
    /// A pending delete of `reset` / `destroy` (`Destroy`), or the record of
    /// a session that holds no data any more (`Emptied`).
    Deleting(SessionId, DestroyCause),
    /// A new id after `destroy` was asked for.
    Replacing,
    /// A new id for auto-renewal was asked for.
    Renewing,
    /// The session's turn was asked for; plan (again) once it is held.
    Waiting(SessionId),
    /// The write was handed out.
    Writing {
        write: Box<Write>,
        fields: Vec<FieldPlan>,
        planned: Planned,
        standing: Standing,
    },
    /// The write applied and is being reported.
    Reporting {
        write: Box<Write>,
        fields: Vec<FieldPlan>,
        planned: Planned,
    },
    /// The eviction over the cap is running.
    Evicting {
        principal: Principal,
        current: SessionHandle,
        cap: usize,
        now: u64,
        client: IdWrite,
    },
    Done,
}

/// One commit of one session.
#[derive(Debug)]
pub(crate) struct Commit {
    policy: Rules,
    now: u64,
    /// The request failed and `saveOnError` is off: keep nothing.
    discard: bool,
    phase: Phase,
    /// The session's turn is held.
    turn: bool,
    retries: u32,
    hops: u32,
}

/// A transition's result: `None` when it handed out a new action (the
/// phase says which), `Some` when the commit is over.
type Step = Option<Finish>;

impl Commit {
    pub(crate) fn new(policy: Rules, now: u64, discard: bool) -> Self {
        Self {
            policy,
            now,
            discard,
            phase: Phase::Start,
            turn: false,
            retries: 0,
            hops: 0,
        }
    }

    /// The next action, given the answer to the last one ([`Answer::Start`]
    /// first). After [`Action::Finish`] the commit is over.
    pub(crate) fn step<T: SessionData>(
        &mut self,
        state: &mut State<T>,
        answer: Answer,
    ) -> Action<'_> {
        match self.advance(state, answer) {
            Some(finish) => {
                self.phase = Phase::Done;
                Action::Finish(finish)
            }
            None => self.action(),
        }
    }

    /// The action the current phase stands for.
    fn action(&self) -> Action<'_> {
        match &self.phase {
            Phase::Deleting(id, cause) => Action::Delete {
                id: id.clone(),
                cause: *cause,
            },
            Phase::Replacing | Phase::Renewing => Action::NewId,
            Phase::Waiting(id) => Action::TakeTurn(id.clone()),
            Phase::Writing { write, .. } => Action::Write(write),
            Phase::Reporting { write, fields, .. } => Action::Report { write, fields },
            Phase::Evicting {
                principal,
                current,
                cap,
                now,
                ..
            } => Action::Evict {
                principal,
                current: current.clone(),
                cap: *cap,
                now: *now,
            },
            // Never left in these phases with an action pending.
            Phase::Start | Phase::Done => {
                Action::Finish(Finish::Quiet(CommitOutcome::Unchanged, IdWrite::Nothing))
            }
        }
    }

    fn advance<T: SessionData>(&mut self, state: &mut State<T>, answer: Answer) -> Step {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, answer) {
            (Phase::Start, _) => {
                if self.discard || state.degraded {
                    state.drop_pending();
                    return Some(Finish::Quiet(CommitOutcome::Discarded, IdWrite::Nothing));
                }
                self.next_delete(state)
            }
            (Phase::Deleting(_, DestroyCause::Emptied), Answer::Deleted(Ok(()))) => {
                Some(Finish::Quiet(CommitOutcome::Empty, state.emptied()))
            }
            (Phase::Deleting(..), Answer::Deleted(Ok(()))) => self.next_delete(state),
            (Phase::Deleting(id, cause), Answer::Deleted(Err(error))) => {
                if cause != DestroyCause::Emptied {
                    // Kept for the next commit, ahead of later deletes.
                    state.deletes.insert(0, id);
                }
                Some(Finish::Failed(error.into()))
            }
            (Phase::Replacing, Answer::NewId(Ok(id))) => {
                state.replace_id(id);
                self.renew(state)
            }
            (Phase::Renewing, Answer::NewId(Ok(id))) => {
                state.rotate(id, self.policy.grace_ms, self.now);
                self.take_turn_if_changing(state)
            }
            (Phase::Replacing | Phase::Renewing, Answer::NewId(Err(error))) => {
                Some(Finish::Failed(error.into()))
            }
            (Phase::Waiting(_), Answer::TurnTaken) => {
                self.turn = true;
                self.plan(state)
            }
            (Phase::Writing { .. }, Answer::Written(Err(error))) => {
                Some(Finish::Failed(error.into()))
            }
            (
                Phase::Writing {
                    write,
                    fields,
                    planned,
                    standing,
                },
                Answer::Written(Ok(written)),
            ) => self.written(state, write, fields, planned, &standing, written),
            (
                Phase::Reporting {
                    write,
                    fields,
                    planned,
                },
                Answer::Reported,
            ) => {
                state.written(&write, fields, planned);
                let client = state.finish(&self.policy, self.now, true);
                match (self.policy.max_sessions_per_user, &write.principal) {
                    (Some(cap), Some(PrincipalWrite::Join(principal))) => {
                        let current = match &write.kind {
                            WriteKind::Rotate { to, .. } => SessionHandle::of(to),
                            WriteKind::Create | WriteKind::Update => SessionHandle::of(&write.id),
                        };
                        self.phase = Phase::Evicting {
                            principal: principal.clone(),
                            current,
                            cap,
                            now: write.now,
                            client,
                        };
                        None
                    }
                    _ => Some(Finish::Wrote(client)),
                }
            }
            (Phase::Evicting { client, .. }, Answer::Evicted) => Some(Finish::Wrote(client)),
            (phase, answer) => {
                // Not the answer to what was asked: a driver bug. Ask again.
                debug_assert!(false, "commit: {answer:?} answered in {phase:?}");
                self.phase = phase;
                None
            }
        }
    }

    /// The next pending delete of `reset` / `destroy`, or on to the id.
    fn next_delete<T: SessionData>(&mut self, state: &mut State<T>) -> Step {
        if state.deletes.is_empty() {
            return self.replace_id(state);
        }
        self.phase = Phase::Deleting(state.deletes.remove(0), DestroyCause::Destroy);
        None
    }

    /// A new id after `destroy`, once the session has data again.
    fn replace_id<T: SessionData>(&mut self, state: &mut State<T>) -> Step {
        if state.needs_new_id() {
            self.phase = Phase::Replacing;
            return None;
        }
        self.renew(state)
    }

    /// Auto-renewal: a new id when the current one is old enough.
    fn renew<T: SessionData>(&mut self, state: &mut State<T>) -> Step {
        if state.renewal_due(&self.policy, self.now) {
            self.phase = Phase::Renewing;
            return None;
        }
        self.take_turn_if_changing(state)
    }

    /// A commit that changed the session waits for its turn before it plans
    /// (so it plans, and encodes its fields, once); a read-only commit never
    /// waits, and one that turns out to need a touch waits after planning.
    fn take_turn_if_changing<T: SessionData>(&mut self, state: &mut State<T>) -> Step {
        let changing = state.has_changes() || state.meta_changed;
        match state.stored_id() {
            Some(id) if changing && !self.turn => {
                self.phase = Phase::Waiting(id.clone());
                None
            }
            _ => self.plan(state),
        }
    }

    fn plan<T: SessionData>(&mut self, state: &mut State<T>) -> Step {
        if !state.has_changes()
            && plan::unchanged_needs_nothing(
                &self.policy,
                &state.standing,
                state.stored_meta.as_ref(),
                state.meta_changed,
                state.has_stored_data(),
                self.now,
            )
        {
            let client = state.finish(&self.policy, self.now, false);
            return Some(Finish::Quiet(CommitOutcome::Unchanged, client));
        }
        let input = match state.input() {
            Ok(input) => input,
            Err(error) => return Some(Finish::Failed(error)),
        };
        let planned = Planned {
            version: state.version,
            ops: state.ops.len(),
        };
        match plan::plan_write(&self.policy, &input, self.now) {
            Plan::Write(write) => {
                if !self.turn {
                    if let Some(id) = state.stored_id() {
                        // Plan again once the turn is held: other tasks may
                        // change the handle while this commit waits.
                        self.phase = Phase::Waiting(id.clone());
                        return None;
                    }
                }
                self.phase = Phase::Writing {
                    write,
                    fields: input.fields,
                    planned,
                    standing: input.standing,
                };
                None
            }
            Plan::Nothing => {
                let client = state.finish(&self.policy, self.now, false);
                Some(Finish::Quiet(CommitOutcome::Unchanged, client))
            }
            Plan::TooLarge { size, limit } => Some(Finish::Refused(
                CommitOutcome::TooLarge,
                SessionError::TooLarge { size, limit },
            )),
            Plan::Drop(Some(id)) => {
                self.phase = Phase::Deleting(id, DestroyCause::Emptied);
                None
            }
            Plan::Drop(None) => Some(Finish::Quiet(CommitOutcome::Empty, state.emptied())),
        }
    }

    /// The store answered the write.
    fn written<T: SessionData>(
        &mut self,
        state: &mut State<T>,
        write: Box<Write>,
        fields: Vec<FieldPlan>,
        planned: Planned,
        standing: &Standing,
        written: Written,
    ) -> Step {
        match plan::next_step(standing, &written, self.retries, self.hops) {
            Next::Done => {
                // Reported before the state takes the write in (the
                // observer sees what was planned and written).
                self.phase = Phase::Reporting {
                    write,
                    fields,
                    planned,
                };
                None
            }
            Next::Gone => Some(Finish::Quiet(CommitOutcome::Gone, state.gone())),
            Next::Retarget { to, keep_rotation } => {
                self.hops += 1;
                state.retarget(to, keep_rotation);
                self.plan(state)
            }
            Next::Replay => {
                self.retries += 1;
                if let Written::Conflict(record) = written {
                    state.replay(record);
                }
                self.plan(state)
            }
            Next::GiveUp => Some(Finish::Refused(
                CommitOutcome::Conflict,
                SessionError::Conflict {
                    retries: self.retries,
                },
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Every transition of the commit, driven by a scripted store: no store,
    //! no runtime. Each case sets up a session, scripts the store's answers
    //! to writes, and checks the actions handed out and how the commit ends.

    use std::borrow::Cow;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::lifecycle::state::{Change, Reached};
    use crate::principal::ToPrincipalKey;
    use crate::record::{Fields, Meta, Record};

    const MIN: u64 = 60_000;
    pub(crate) const NOW: u64 = 100 * MIN;

    /// A session with a principal (`user`) and a counter (also the test
    /// type of `group.rs` and `session.rs`, which use the helpers below
    /// too).
    #[derive(Default, Clone, Debug)]
    pub(crate) struct Cart {
        pub(crate) user: Option<u64>,
        pub(crate) n: u32,
    }

    impl SessionData for Cart {
        const FIELDS: &'static [crate::codec::FieldInfo] = &[
            crate::codec::FieldInfo::new("user", "user"),
            crate::codec::FieldInfo::new("n", "n"),
        ];
        const PRINCIPAL: Option<usize> = Some(0);
        fn encode_field(
            &self,
            i: usize,
            out: &mut Vec<u8>,
        ) -> Result<(), crate::codec::EncodeError> {
            match i {
                0 => crate::codec::encode_value(&self.user, out),
                _ => crate::codec::encode_value(&self.n, out),
            }
        }
        fn decode_field(&mut self, i: usize, b: &[u8]) -> Result<(), crate::codec::DecodeError> {
            match i {
                0 => self.user = crate::codec::decode_value(b)?,
                _ => self.n = crate::codec::decode_value(b)?,
            }
            Ok(())
        }
        fn reset_field(&mut self, i: usize) {
            match i {
                0 => self.user = None,
                _ => self.n = 0,
            }
        }
        fn principal_key(&self) -> Option<Cow<'_, str>> {
            self.user.to_principal_key()
        }
    }

    pub(crate) fn policy() -> Rules {
        Rules {
            renew_ms: None,
            grace_ms: 5_000,
            touch_after_ms: None,
            cookie_ms: 120 * MIN,
            cookie_session_only: false,
            idle_ms: 30 * MIN,
            max_bytes: 4096,
            max_sessions_per_user: None,
        }
    }

    pub(crate) fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:a>22}")).unwrap()
    }

    pub(crate) fn enc<V: serde::Serialize>(v: &V) -> Bytes {
        let mut out = Vec::new();
        crate::codec::encode_value(v, &mut out).unwrap();
        Bytes::from(out)
    }

    /// A stored session with `n`, last used `idle_ago` ms ago.
    pub(crate) fn record(n: u32, user: Option<u64>, idle_ago: u64) -> Record {
        let mut meta = Meta::new(NOW - 60 * MIN, 30 * MIN, None);
        meta.last_access = NOW - idle_ago;
        meta.id_issued_at = NOW - 60 * MIN;
        let mut fields = Fields::default();
        fields.insert(Bytes::from_static(b"n"), enc(&n));
        if user.is_some() {
            fields.insert(Bytes::from_static(b"user"), enc(&user));
        }
        Record { meta, fields }
    }

    pub(crate) fn stored(n: u32) -> State<Cart> {
        State::stored(id("cur"), record(n, None, 0), Reached::Directly)
    }

    fn fresh() -> State<Cart> {
        State::fresh(id("new"), Meta::new(NOW, 30 * MIN, None), false)
    }

    fn set_n(state: &mut State<Cart>, n: u32) {
        state.record(Change::Apply {
            target: Some(1),
            reads: false,
            f: Arc::new(move |d: &mut Cart| d.n = n),
        });
    }

    pub(crate) fn add_n(state: &mut State<Cart>) {
        state.record(Change::Apply {
            target: Some(1),
            reads: true,
            f: Arc::new(|d: &mut Cart| d.n += 1),
        });
    }

    fn set_user(state: &mut State<Cart>, user: u64) {
        state.record(Change::Apply {
            target: Some(0),
            reads: false,
            f: Arc::new(move |d: &mut Cart| d.user = Some(user)),
        });
    }

    /// How a commit went: the actions handed out, in order, and its end.
    struct Run {
        actions: Vec<String>,
        writes: Vec<Write>,
        finish: Finish,
    }

    impl Run {
        fn ended(&self) -> String {
            let client = |c: &IdWrite| match c {
                IdWrite::Nothing => "nothing".to_owned(),
                IdWrite::Clear => "clear".to_owned(),
                IdWrite::Set(id, _) => format!("set {}", id.as_str().trim_start_matches('a')),
            };
            match &self.finish {
                Finish::Wrote(c) => format!("wrote, {}", client(c)),
                Finish::Quiet(o, c) => format!("{o:?}, {}", client(c)),
                Finish::Refused(o, e) => format!("refused {o:?}: {e}"),
                Finish::Failed(e) => format!("failed: {e}"),
            }
        }
    }

    /// Drives `commit` to its end: writes are answered from `answers` in
    /// order (then `Done`), new ids are `id1`, `id2`..., deletes succeed
    /// unless `fail_delete`.
    fn drive(
        mut commit: Commit,
        state: &mut State<Cart>,
        answers: Vec<Result<Written, StoreError>>,
        fail_delete: bool,
    ) -> Run {
        let mut answers = answers.into_iter();
        let (mut actions, mut writes, mut ids) = (Vec::new(), Vec::new(), 0);
        let mut answer = Answer::Start;
        for _ in 0..100 {
            answer = match commit.step(state, answer) {
                Action::Delete { id, cause } => {
                    actions.push(format!(
                        "delete {} ({cause:?})",
                        id.as_str().trim_start_matches('a')
                    ));
                    Answer::Deleted(if fail_delete {
                        Err(StoreError::Unsupported("down"))
                    } else {
                        Ok(())
                    })
                }
                Action::NewId => {
                    ids += 1;
                    actions.push("new id".into());
                    Answer::NewId(Ok(id(&format!("id{ids}"))))
                }
                Action::TakeTurn(id) => {
                    actions.push(format!("turn {}", id.as_str().trim_start_matches('a')));
                    Answer::TurnTaken
                }
                Action::Write(write) => {
                    let kind = match &write.kind {
                        WriteKind::Create => "create".to_owned(),
                        WriteKind::Update => "update".to_owned(),
                        WriteKind::Rotate { to, grace_ms, .. } => format!(
                            "rotate to {} (grace {grace_ms})",
                            to.as_str().trim_start_matches('a')
                        ),
                    };
                    actions.push(format!(
                        "write {} {kind}",
                        write.id.as_str().trim_start_matches('a')
                    ));
                    writes.push(write.clone());
                    Answer::Written(answers.next().unwrap_or(Ok(Written::Done)))
                }
                Action::Report { .. } => {
                    actions.push("report".into());
                    Answer::Reported
                }
                Action::Evict { principal, cap, .. } => {
                    actions.push(format!("evict {principal} over {cap}"));
                    Answer::Evicted
                }
                Action::Finish(finish) => {
                    return Run {
                        actions,
                        writes,
                        finish,
                    }
                }
            };
        }
        panic!("the commit did not end: {actions:?}");
    }

    /// A commit under `maxSessionsPerUser` = `cap`.
    fn capped(cap: usize) -> Commit {
        let mut policy = policy();
        policy.max_sessions_per_user = Some(cap);
        Commit::new(policy, NOW, false)
    }

    fn commit() -> Commit {
        Commit::new(policy(), NOW, false)
    }

    fn set_field(write: &Write, name: &str) -> Option<Bytes> {
        write
            .set
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn transitions() {
        type Setup = fn(&mut State<Cart>);
        struct Case {
            name: &'static str,
            state: fn() -> State<Cart>,
            setup: Setup,
            commit: fn() -> Commit,
            answers: fn() -> Vec<Result<Written, StoreError>>,
            actions: &'static [&'static str],
            ended: &'static str,
        }
        let none = Vec::new;
        let cases = [
            Case {
                name: "create",
                state: fresh,
                setup: |s| set_n(s, 1),
                commit,
                answers: none,
                actions: &["write new create", "report"],
                ended: "wrote, set new",
            },
            Case {
                name: "a fresh session that stays empty is not stored",
                state: fresh,
                setup: |s| set_n(s, 0),
                commit,
                answers: none,
                actions: &[],
                ended: "Empty, nothing",
            },
            Case {
                name: "update takes the turn before planning",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: none,
                actions: &["turn cur", "write cur update", "report"],
                ended: "wrote, set cur",
            },
            Case {
                name: "read-only and no touch due: nothing",
                state: || stored(1),
                setup: |_| {},
                commit,
                answers: none,
                actions: &[],
                ended: "Unchanged, nothing",
            },
            Case {
                name: "touch: the turn is taken after planning, then it plans again",
                state: || State::stored(id("cur"), record(1, None, 10 * MIN), Reached::Directly),
                setup: |_| {},
                commit,
                answers: none,
                actions: &["turn cur", "write cur update", "report"],
                ended: "wrote, set cur",
            },
            Case {
                name: "renewal rotates with grace",
                state: || stored(1),
                setup: |_| {},
                commit: || {
                    let mut policy = policy();
                    policy.renew_ms = Some(30 * MIN);
                    Commit::new(policy, NOW, false)
                },
                answers: none,
                actions: &[
                    "new id",
                    "turn cur",
                    "write cur rotate to id1 (grace 5000)",
                    "report",
                ],
                ended: "wrote, set id1",
            },
            Case {
                name: "regenerate rotates without grace",
                state: || stored(1),
                setup: |s| {
                    s.rotate(id("reg"), 0, NOW);
                    set_user(s, 7);
                },
                commit,
                answers: none,
                actions: &["turn cur", "write cur rotate to reg (grace 0)", "report"],
                ended: "wrote, set reg",
            },
            Case {
                name: "a conflict replays the change on what is stored now",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: || vec![Ok(Written::Conflict(record(5, None, 0)))],
                actions: &["turn cur", "write cur update", "write cur update", "report"],
                ended: "wrote, set cur",
            },
            Case {
                name: "moved: the write follows the rotation",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: || vec![Ok(Written::Moved(id("moved")))],
                actions: &[
                    "turn cur",
                    "write cur update",
                    "write moved update",
                    "report",
                ],
                ended: "wrote, set moved",
            },
            Case {
                name: "gone: nothing is kept and the client is told nothing",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: || vec![Ok(Written::Gone)],
                actions: &["turn cur", "write cur update"],
                ended: "Gone, nothing",
            },
            Case {
                name: "emptied: the record is deleted and the id cleared",
                state: || stored(1),
                setup: |s| s.record(Change::Remove(1)),
                commit,
                answers: none,
                actions: &["turn cur", "delete cur (Emptied)"],
                ended: "Empty, clear",
            },
            Case {
                name: "destroy: deleted, the client's id cleared",
                state: || stored(1),
                setup: |s| {
                    let meta = s.meta;
                    let id = s.id.clone();
                    s.forget(id, meta, true);
                },
                commit,
                answers: none,
                actions: &["delete cur (Destroy)"],
                ended: "Empty, clear",
            },
            Case {
                name: "set after destroy: a new session under a new id",
                state: || stored(1),
                setup: |s| {
                    let meta = s.meta;
                    let id = s.id.clone();
                    s.forget(id, meta, true);
                    set_n(s, 3);
                },
                commit,
                answers: none,
                actions: &[
                    "delete cur (Destroy)",
                    "new id",
                    "write id1 create",
                    "report",
                ],
                ended: "wrote, set id1",
            },
            Case {
                name: "degraded: never written",
                state: || {
                    let mut s = fresh();
                    s.degraded = true;
                    s
                },
                setup: |s| set_n(s, 1),
                commit,
                answers: none,
                actions: &[],
                ended: "Discarded, nothing",
            },
            Case {
                name: "failed request: nothing kept",
                state: || stored(1),
                setup: add_n,
                commit: || Commit::new(policy(), NOW, true),
                answers: none,
                actions: &[],
                ended: "Discarded, nothing",
            },
            Case {
                name: "too large",
                state: fresh,
                setup: |s| set_n(s, 1),
                commit: || {
                    let mut policy = policy();
                    policy.max_bytes = 1;
                    Commit::new(policy, NOW, false)
                },
                answers: none,
                actions: &[],
                ended: "refused TooLarge",
            },
            Case {
                name: "conflicts without end: give up",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: || {
                    (0..=plan::MAX_RETRIES)
                        .map(|_| Ok(Written::Conflict(record(5, None, 0))))
                        .collect()
                },
                actions: &[],
                ended: "refused Conflict",
            },
            Case {
                name: "a store failure keeps the changes pending",
                state: || stored(1),
                setup: add_n,
                commit,
                answers: || vec![Err(StoreError::Unsupported("down"))],
                actions: &["turn cur", "write cur update"],
                ended: "failed",
            },
            Case {
                name: "a login over maxSessionsPerUser evicts",
                state: fresh,
                setup: |s| set_user(s, 7),
                commit: || capped(2),
                answers: none,
                actions: &["write new create", "report", "evict 7 over 2"],
                ended: "wrote, set new",
            },
            Case {
                name: "an update that keeps the principal does not evict",
                state: || State::stored(id("cur"), record(1, Some(7), 0), Reached::Directly),
                setup: add_n,
                commit: || capped(2),
                answers: none,
                actions: &["turn cur", "write cur update", "report"],
                ended: "wrote, set cur",
            },
        ];
        for case in cases {
            let mut state = (case.state)();
            (case.setup)(&mut state);
            let run = drive((case.commit)(), &mut state, (case.answers)(), false);
            if !case.actions.is_empty() || run.writes.is_empty() {
                assert_eq!(run.actions, case.actions, "{}", case.name);
            }
            assert!(
                run.ended().starts_with(case.ended),
                "{}: ended {:?}",
                case.name,
                run.ended()
            );
        }
    }

    #[test]
    fn a_replay_writes_the_change_on_the_stored_value() {
        let mut state = stored(1);
        add_n(&mut state);
        let run = drive(
            commit(),
            &mut state,
            vec![Ok(Written::Conflict(record(5, None, 0)))],
            false,
        );
        assert_eq!(set_field(&run.writes[0], "n"), Some(enc(&2u32)));
        assert_eq!(set_field(&run.writes[1], "n"), Some(enc(&6u32)));
        assert_eq!(run.writes[1].expect, vec![("n", Some(enc(&5u32)))]);
        assert!(!state.has_changes(), "written");
    }

    #[test]
    fn a_failed_write_or_delete_keeps_everything_for_the_next_commit() {
        let mut state = stored(1);
        add_n(&mut state);
        let run = drive(
            commit(),
            &mut state,
            vec![Err(StoreError::Unsupported("down"))],
            false,
        );
        assert!(matches!(run.finish, Finish::Failed(SessionError::Store(_))));
        assert!(state.has_changes());
        assert_eq!(state.ops.len(), 1);

        let mut state = stored(1);
        let (meta, cur) = (state.meta, state.id.clone());
        state.forget(cur.clone(), meta, true);
        let run = drive(commit(), &mut state, Vec::new(), true);
        assert!(matches!(run.finish, Finish::Failed(SessionError::Store(_))));
        assert_eq!(state.deletes, vec![cur], "the delete is retried next time");
    }

    #[test]
    fn a_commit_after_a_failed_one_writes_what_was_pending() {
        let mut state = stored(1);
        add_n(&mut state);
        let _ = drive(
            commit(),
            &mut state,
            vec![Err(StoreError::Unsupported("down"))],
            false,
        );
        let run = drive(commit(), &mut state, Vec::new(), false);
        assert_eq!(run.ended(), "wrote, set cur");
        assert_eq!(set_field(&run.writes[0], "n"), Some(enc(&2u32)));
    }

    #[test]
    fn a_rotation_that_keeps_the_principal_expects_it() {
        let mut state = State::<Cart>::stored(id("cur"), record(1, Some(7), 0), Reached::Directly);
        state.rotate(id("reg"), 0, NOW);
        let run = drive(commit(), &mut state, Vec::new(), false);
        let write = &run.writes[0];
        assert!(matches!(write.principal, Some(PrincipalWrite::Keep(_))));
        assert_eq!(write.expect, vec![("user", Some(enc(&Some(7u64))))]);
    }

    #[test]
    fn changes_made_while_the_write_was_in_flight_stay_pending() {
        let mut state = stored(1);
        add_n(&mut state);
        let mut commit = commit();
        let mut answer = Answer::Start;
        loop {
            match commit.step(&mut state, answer) {
                Action::TakeTurn(_) => answer = Answer::TurnTaken,
                Action::Write(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Another task of the same request changes the session now.
        set_user(&mut state, 9);
        match commit.step(&mut state, Answer::Written(Ok(Written::Done))) {
            Action::Report { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            commit.step(&mut state, Answer::Reported),
            Action::Finish(Finish::Wrote(_))
        ));
        assert!(state.has_changes(), "the later change is not lost");
        assert_eq!(state.ops.len(), 1);
    }
}

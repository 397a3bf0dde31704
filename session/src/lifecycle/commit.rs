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
use crate::metrics::Outcome;
use crate::plan::{self, FieldPlan, IdWrite, Next, Plan, Policy, Standing};
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
    Quiet(Outcome, IdWrite),
    /// Refused (`TooLarge`, `Conflict`): report the outcome, fail.
    Refused(Outcome, SessionError),
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
        client: IdWrite,
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
    policy: Policy,
    /// `maxSessionsPerUser`.
    cap: Option<usize>,
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
    pub(crate) fn new(policy: Policy, cap: Option<usize>, now: u64, discard: bool) -> Self {
        Self {
            policy,
            cap,
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
                Action::Finish(Finish::Quiet(Outcome::Unchanged, IdWrite::Nothing))
            }
        }
    }

    fn advance<T: SessionData>(&mut self, state: &mut State<T>, answer: Answer) -> Step {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, answer) {
            (Phase::Start, _) => {
                if self.discard || state.degraded {
                    state.drop_pending();
                    return Some(Finish::Quiet(Outcome::Discarded, IdWrite::Nothing));
                }
                self.next_delete(state)
            }
            (Phase::Deleting(_, DestroyCause::Emptied), Answer::Deleted(Ok(()))) => {
                Some(Finish::Quiet(Outcome::Empty, state.emptied()))
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
            (Phase::Reporting { write, client, .. }, Answer::Reported) => {
                match (self.cap, &write.principal) {
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
            return Some(Finish::Quiet(Outcome::Unchanged, client));
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
                Some(Finish::Quiet(Outcome::Unchanged, client))
            }
            Plan::TooLarge { size, limit } => Some(Finish::Refused(
                Outcome::TooLarge,
                SessionError::TooLarge { size, limit },
            )),
            Plan::Drop(Some(id)) => {
                self.phase = Phase::Deleting(id, DestroyCause::Emptied);
                None
            }
            Plan::Drop(None) => Some(Finish::Quiet(Outcome::Empty, state.emptied())),
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
                state.written(&write, &fields, planned);
                let client = state.finish(&self.policy, self.now, true);
                self.phase = Phase::Reporting {
                    write,
                    fields,
                    client,
                };
                None
            }
            Next::Gone => Some(Finish::Quiet(Outcome::Gone, state.gone())),
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
                Outcome::Conflict,
                SessionError::Conflict {
                    retries: self.retries,
                },
            )),
        }
    }
}

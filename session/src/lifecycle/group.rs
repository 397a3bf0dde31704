//! Group commit: a commit waiting for its session's turn posts its changes,
//! and the commit holding the turn writes them with its own.
//!
//! Requests of one session in this process commit one after the other
//! (`turns.rs`). Without grouping, each waiter's write goes out after the
//! one ahead of it, one round trip each. With it, the holder gathers every
//! posted [`Fold`], applies the waiting requests' change logs after its own
//! (in posting order, as if the requests had run one after the other),
//! and sends one conditional write for all of them; each waiter learns its
//! [`Outcome`] from that write and never sends a write of its own.
//!
//! The guarantees stay those of `guide::concurrency`: the write is
//! conditional on what every folded change read (a conflict replays all of
//! them on the fresher record), on the session still existing (a destroyed
//! session is not resurrected by anyone's changes), and each handler
//! already got the value computed on its own load. What cannot be shared
//! is not folded: only a change of fields of a session stored under the id
//! the client holds posts (`State::foldable`); a holder only gathers when it
//! writes the session where it is stored (`State::gathers`). If the
//! combined write is refused (too large, or conflicts past the retry
//! limit) the holder drops the folded changes and commits alone, and each
//! waiter commits on its own as before; if it fails, every waiter is told
//! so and commits on its own.

use tokio::sync::oneshot;

use crate::data::SessionData;
use crate::id::SessionId;
use crate::lifecycle::commit::Finish;
use crate::lifecycle::state::{Change, Planned, State};
use crate::metrics::CommitOutcome;
use crate::plan::{IdWrite, Rules};
use crate::record::Record;
use crate::store::StoreError;
use crate::turns::Turn;

/// One waiting commit's changes, and where it hears back.
pub(crate) struct Fold<T> {
    ops: Vec<Change<T>>,
    reply: oneshot::Sender<Outcome>,
}

/// What became of a posted fold.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Written with the holder's write: the store holds `record` under `id`.
    Absorbed { id: SessionId, record: Record },
    /// The session was gone (destroyed, revoked, expired): nothing written.
    Gone,
    /// The changes left the session without data: it was deleted.
    Emptied,
    /// Not written: commit on your own.
    NotTaken,
}

/// A fold about to be posted: the fold, what it covers of the waiting
/// commit's changes, and where the outcome arrives.
pub(crate) struct Posting<T> {
    pub(crate) fold: Fold<T>,
    pub(crate) planned: Planned,
    pub(crate) reply: oneshot::Receiver<Outcome>,
}

/// The fold of a waiting commit, if its changes may be written by another.
pub(crate) fn posting<T: SessionData>(state: &State<T>) -> Option<Posting<T>> {
    if !state.foldable() {
        return None;
    }
    let (reply, receiver) = oneshot::channel();
    Some(Posting {
        fold: Fold {
            ops: state.ops.clone(),
            reply,
        },
        planned: state.planned(),
        reply: receiver,
    })
}

/// The folds a holder took, owed an outcome.
pub(crate) struct Gathered<T> {
    folds: Vec<Fold<T>>,
    /// How many of the holder's changes are its own.
    own: usize,
}

/// The holder of `id`'s turn takes the folds posted for `id` and applies
/// their changes after its own. `None` when nothing was posted.
pub(crate) fn gather<T: SessionData>(
    turn: &Turn<'_>,
    id: &SessionId,
    state: &mut State<T>,
) -> Option<Gathered<T>> {
    if !state.gathers() {
        return None;
    }
    let folds: Vec<Fold<T>> = turn
        .gather(id)
        .into_iter()
        // Posted by this manager, so of this type; anything else (never)
        // is dropped, which tells its waiter the write is unknown.
        .filter_map(|posted| posted.downcast::<Fold<T>>().ok().map(|fold| *fold))
        .collect();
    if folds.is_empty() {
        return None;
    }
    let own = state.ops.len();
    for fold in &folds {
        state.fold_in(&fold.ops);
    }
    Some(Gathered { folds, own })
}

impl<T: SessionData> Gathered<T> {
    /// The holder's commit ended with `finish`: tell every waiter. Returns
    /// whether the holder should commit again alone (the combined write was
    /// refused; the folded changes are dropped from its session first).
    pub(crate) fn answer(self, finish: &Finish, state: &mut State<T>) -> bool {
        let (alone, outcome) = match finish {
            Finish::Wrote(_) | Finish::Quiet(CommitOutcome::Unchanged, _) => {
                match state.stored_record() {
                    Some(record) => (
                        false,
                        Some(Outcome::Absorbed {
                            id: state.id.clone(),
                            record,
                        }),
                    ),
                    None => (false, None),
                }
            }
            Finish::Quiet(CommitOutcome::Gone, _) => (false, Some(Outcome::Gone)),
            Finish::Quiet(CommitOutcome::Empty, _) => (false, Some(Outcome::Emptied)),
            Finish::Quiet(..) | Finish::Failed(_) => {
                state.unfold(self.own);
                (false, None)
            }
            Finish::Refused(..) => {
                state.unfold(self.own);
                (true, None)
            }
        };
        for fold in self.folds {
            let outcome = match &outcome {
                Some(Outcome::Absorbed { id, record }) => Outcome::Absorbed {
                    id: id.clone(),
                    record: record.clone(),
                },
                Some(Outcome::Gone) => Outcome::Gone,
                Some(Outcome::Emptied) => Outcome::Emptied,
                Some(Outcome::NotTaken) | None => Outcome::NotTaken,
            };
            // A waiter that went away needs no answer.
            let _ = fold.reply.send(outcome);
        }
        alone
    }
}

/// A waiting commit learned `outcome`: its session takes it in. `None` for
/// [`Outcome::NotTaken`] (commit on your own); otherwise how the commit
/// ended and what the client is told.
pub(crate) fn settle<T: SessionData>(
    state: &mut State<T>,
    outcome: Outcome,
    planned: Planned,
    policy: &Rules,
    now: u64,
) -> Option<(CommitOutcome, IdWrite)> {
    match outcome {
        Outcome::Absorbed { id, record } => {
            state.absorbed(id, record, planned);
            Some((CommitOutcome::Folded, state.finish(policy, now, true)))
        }
        Outcome::Gone => Some((CommitOutcome::Gone, state.gone())),
        Outcome::Emptied => Some((CommitOutcome::Empty, state.emptied())),
        Outcome::NotTaken => None,
    }
}

/// The commit that gathered this request's changes went away before it
/// said whether its write applied.
#[derive(Debug, thiserror::Error)]
#[error("the request writing this session's changes with its own was cancelled before it finished, so whether they were saved is unknown: retry the request")]
pub(crate) struct HolderCancelled;

impl HolderCancelled {
    pub(crate) fn error() -> StoreError {
        StoreError::unavailable(Self)
    }
}

#[cfg(test)]
mod tests {
    //! Posting, gathering, answering and settling, on plain states; the
    //! driver's use of them is tested with parallel requests in
    //! `session.rs` and over HTTP in the conformance suite.

    use std::sync::Arc;

    use super::*;
    use crate::lifecycle::commit::tests::{add_n, enc, id, policy, record, stored, Cart, NOW};
    use crate::lifecycle::state::Change;
    use crate::record::Meta;
    use crate::turns::{Stripe, Stripes};

    /// The counter as the session holds it now.
    fn n(state: &mut State<Cart>) -> u32 {
        state.decode_all();
        state.data.n
    }

    /// A waiter's +1 on n = 1, posted on `stripe`.
    fn waiting(
        stripe: &Stripe,
    ) -> (
        State<Cart>,
        Planned,
        oneshot::Receiver<Outcome>,
        crate::turns::Posted<'_>,
    ) {
        let mut waiter = stored(1);
        add_n(&mut waiter);
        let Posting {
            fold,
            planned,
            reply,
        } = posting(&waiter).unwrap();
        let posted = stripe.post(id("cur"), Box::new(fold));
        (waiter, planned, reply, posted)
    }

    #[test]
    fn only_a_change_of_plain_fields_posts() {
        let mut state = stored(1);
        assert!(posting(&state).is_none(), "nothing to write");
        add_n(&mut state);
        assert!(posting(&state).is_some());

        let mut login = stored(1);
        login.record(Change::Apply {
            target: Some(0),
            reads: false,
            f: Arc::new(|d: &mut Cart| d.user = Some(7)),
        });
        assert!(posting(&login).is_some(), "a principal field is a field");

        let mut take = stored(1);
        take.record(Change::Take {
            index: 1,
            seen: Some(enc(&1_u32).to_vec()),
            once: true,
        });
        assert!(posting(&take).is_none(), "a take's outcome is its own");

        let mut fresh = State::<Cart>::fresh(id("new"), Meta::new(NOW, 30 * 60_000, None), false);
        add_n(&mut fresh);
        assert!(posting(&fresh).is_none(), "not stored");

        let mut timeout = stored(1);
        add_n(&mut timeout);
        timeout.meta_changed = true;
        assert!(posting(&timeout).is_none(), "metadata is its own");
    }

    #[tokio::test]
    async fn the_holder_writes_the_waiters_changes_after_its_own_and_each_learns_the_record() {
        let stripes = Stripes::new();
        let stripe = stripes.of(&id("cur"));
        // Two waiters, each +1 on n = 1 as they loaded it.
        let mut waiters = Vec::new();
        let mut posted = Vec::new();
        for _ in 0..2 {
            let (state, planned, reply, on_board) = waiting(stripe);
            posted.push(on_board);
            waiters.push((state, planned, reply));
        }
        let turn = stripe.take_turn().await;
        let mut holder = stored(1);
        add_n(&mut holder);
        let gathered = gather(&turn, &id("cur"), &mut holder).unwrap();
        assert_eq!(n(&mut holder), 4, "its own +1 and two folded");
        assert_eq!(gathered.own, 1);
        for p in posted {
            assert!(!p.withdraw(), "gathered");
        }
        // The combined write applied (as the commit's `State::written` would
        // record it): the holder's session now stores n = 4.
        holder.absorbed(id("cur"), record(4, None, 0), holder.planned());
        let alone = gathered.answer(&Finish::Wrote(IdWrite::Nothing), &mut holder);
        assert!(!alone);
        for (mut state, planned, mut reply) in waiters {
            let outcome = reply.try_recv().unwrap();
            let (commit, _) = settle(&mut state, outcome, planned, &policy(), NOW).unwrap();
            assert_eq!(commit, CommitOutcome::Folded);
            assert_eq!(n(&mut state), 4, "the waiter sees what was written");
            assert!(!state.has_changes(), "nothing left pending");
        }
    }

    /// A waiter's +1 on n = 1 posted, and a holder (+1 on n = 1) that
    /// gathered it.
    struct OneWaiter {
        waiter: State<Cart>,
        planned: Planned,
        reply: oneshot::Receiver<Outcome>,
        holder: State<Cart>,
        gathered: Gathered<Cart>,
    }

    async fn one_waiter() -> OneWaiter {
        let stripes = Stripes::new();
        let stripe = stripes.of(&id("cur"));
        let (waiter, planned, reply, _posted) = waiting(stripe);
        let turn = stripe.take_turn().await;
        let mut holder = stored(1);
        add_n(&mut holder);
        let gathered = gather(&turn, &id("cur"), &mut holder).unwrap();
        OneWaiter {
            waiter,
            planned,
            reply,
            holder,
            gathered,
        }
    }

    #[tokio::test]
    async fn a_refused_combined_write_drops_the_folded_changes_and_the_waiters_commit_alone() {
        let OneWaiter {
            mut waiter,
            planned,
            mut reply,
            mut holder,
            gathered,
        } = one_waiter().await;
        assert_eq!(n(&mut holder), 3);
        let alone = gathered.answer(
            &Finish::Refused(
                CommitOutcome::TooLarge,
                crate::SessionError::TooLarge { size: 1, limit: 0 },
            ),
            &mut holder,
        );
        assert!(alone, "the holder commits again, alone");
        assert_eq!(n(&mut holder), 2, "only its own change is left");
        assert_eq!(holder.ops.len(), 1);
        let outcome = reply.try_recv().unwrap();
        assert!(matches!(outcome, Outcome::NotTaken));
        assert!(settle(&mut waiter, outcome, planned, &policy(), NOW).is_none());
        assert!(waiter.has_changes(), "the waiter's change is still pending");
    }

    #[tokio::test]
    async fn a_gone_session_is_gone_for_every_waiter() {
        let OneWaiter {
            mut waiter,
            planned,
            mut reply,
            mut holder,
            gathered,
        } = one_waiter().await;
        let finish = Finish::Quiet(CommitOutcome::Gone, holder.gone());
        assert!(!gathered.answer(&finish, &mut holder));
        let (commit, client) = settle(
            &mut waiter,
            reply.try_recv().unwrap(),
            planned,
            &policy(),
            NOW,
        )
        .unwrap();
        assert_eq!(commit, CommitOutcome::Gone);
        assert_eq!(client, IdWrite::Nothing);
        assert!(!waiter.has_changes(), "nothing of it is kept");
    }

    #[test]
    fn a_holder_that_rotates_gathers_nothing() {
        let mut holder = stored(1);
        holder.rotate(id("next"), 5_000, NOW);
        assert!(!holder.gathers());
    }

    #[tokio::test]
    async fn a_dropped_holder_tells_its_waiters_the_outcome_is_unknown() {
        let OneWaiter {
            mut reply,
            gathered,
            ..
        } = one_waiter().await;
        drop(gathered);
        assert!(matches!(
            reply.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(HolderCancelled::error().to_string().contains("unavailable"));
    }
}

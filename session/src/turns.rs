//! Commits of one session within this process take turns, and the one
//! holding the turn can write for the others (group commit).
//!
//! A commit that changes a stored session waits for its session's turn
//! before it plans its write ([`Stripe::take_turn`]), so requests of one
//! session in this process never race each other's conditional writes.
//! While it waits, a commit may *post* its changes on the stripe's board
//! ([`Stripe::post`]); the commit that holds the turn gathers what was
//! posted for its session ([`Turn::gather`]) and sends one write for all of
//! them. The board also keeps the record the last write of a session left
//! ([`Turn::remember`]) while other commits wait, so the next holder plans
//! on it rather than on what it loaded before waiting (a write planned on
//! the older load would be bound to conflict).
//!
//! Across processes the store's conditional writes still decide; this
//! module only saves round trips. It knows nothing of the session's type:
//! what is posted is opaque here (the lifecycle's `group` module gives it
//! meaning). Different sessions share a stripe only by hash collision
//! (1,024 stripes); everything on a board is keyed by session id.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::id::SessionId;
use crate::record::Record;

/// The stripes of one manager.
pub(crate) struct Stripes {
    stripes: Box<[Stripe]>,
    hasher: foldhash::fast::RandomState,
}

/// One stripe: its turn, and the board beside it.
pub(crate) struct Stripe {
    turn: tokio::sync::Mutex<()>,
    board: Mutex<Board>,
    tickets: AtomicU64,
}

/// What waiting commits share with the holder of the turn.
#[derive(Default)]
struct Board {
    /// Commits waiting for the turn (posted or not).
    waiting: usize,
    /// The record the last write through this stripe left, kept while
    /// commits wait.
    last: Option<(SessionId, Record)>,
    posted: Vec<Posting>,
}

struct Posting {
    ticket: u64,
    id: SessionId,
    changes: Box<dyn Any + Send>,
}

impl Stripes {
    const COUNT: usize = 1024;

    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..Self::COUNT)
                .map(|_| Stripe {
                    turn: tokio::sync::Mutex::new(()),
                    board: Mutex::new(Board::default()),
                    tickets: AtomicU64::new(0),
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The stripe of `id`.
    pub(crate) fn of(&self, id: &SessionId) -> &Stripe {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(id.as_str());
        let index = usize::try_from(hash % Self::COUNT as u64).unwrap_or(0);
        &self.stripes[index]
    }
}

impl Stripe {
    fn board(&self) -> MutexGuard<'_, Board> {
        // A panic while the board was locked leaves it consistent (every
        // change to it is one assignment or one `Vec` operation).
        self.board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the stripe's turn; held until the [`Turn`] drops.
    /// Cancel-safe: a dropped wait leaves nothing behind.
    pub(crate) async fn take_turn(&self) -> Turn<'_> {
        let waiting = Waiting::new(self);
        let guard = self.turn.lock().await;
        drop(waiting);
        Turn {
            stripe: self,
            _guard: guard,
        }
    }

    /// The turn, if nobody holds it or waits for it.
    pub(crate) fn try_take_turn(&self) -> Option<Turn<'_>> {
        let guard = self.turn.try_lock().ok()?;
        Some(Turn {
            stripe: self,
            _guard: guard,
        })
    }

    /// Posts `changes` of the session `id` for the holder of the turn to
    /// gather; withdrawn when the returned [`Posted`] drops unless gathered.
    pub(crate) fn post(&self, id: SessionId, changes: Box<dyn Any + Send>) -> Posted<'_> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.board().posted.push(Posting {
            ticket,
            id,
            changes,
        });
        Posted {
            stripe: self,
            ticket,
        }
    }

    /// The session `id` was deleted: the board no longer speaks for it.
    pub(crate) fn forget(&self, id: &SessionId) {
        let mut board = self.board();
        if board.last.as_ref().is_some_and(|(last, _)| last == id) {
            board.last = None;
        }
    }

    /// How many postings for `id` are on the board (tests wait on it).
    #[cfg(test)]
    pub(crate) fn posted(&self, id: &SessionId) -> usize {
        self.board().posted.iter().filter(|p| p.id == *id).count()
    }

    fn withdraw(&self, ticket: u64) -> bool {
        let mut board = self.board();
        let before = board.posted.len();
        board.posted.retain(|p| p.ticket != ticket);
        board.posted.len() != before
    }
}

/// Counts a commit as waiting while its wait lasts (dropped on cancel too).
struct Waiting<'a>(&'a Stripe);

impl<'a> Waiting<'a> {
    fn new(stripe: &'a Stripe) -> Self {
        stripe.board().waiting += 1;
        Self(stripe)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut board = self.0.board();
        board.waiting = board.waiting.saturating_sub(1);
    }
}

/// The turn of a stripe, held until dropped.
pub(crate) struct Turn<'a> {
    stripe: &'a Stripe,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Turn<'_> {
    /// Takes everything posted for the session `id`.
    pub(crate) fn gather(&self, id: &SessionId) -> Vec<Box<dyn Any + Send>> {
        let mut board = self.stripe.board();
        let (mine, rest) = std::mem::take(&mut board.posted)
            .into_iter()
            .partition(|p| p.id == *id);
        board.posted = rest;
        mine.into_iter().map(|p: Posting| p.changes).collect()
    }

    /// The record the last write of `id` through this stripe left, if
    /// commits were waiting when it was written.
    pub(crate) fn last(&self, id: &SessionId) -> Option<Record> {
        let board = self.stripe.board();
        match &board.last {
            Some((last, record)) if last == id => Some(record.clone()),
            _ => None,
        }
    }

    /// A write of `id` left `record`: kept for the commits waiting now.
    pub(crate) fn remember(&self, id: &SessionId, record: Record) {
        let mut board = self.stripe.board();
        if board.waiting > 0 {
            board.last = Some((id.clone(), record));
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Nobody waits: nobody needs the last record (memory stays bounded
        // by the commits in flight).
        let mut board = self.stripe.board();
        if board.waiting == 0 {
            board.last = None;
        }
    }
}

/// Changes posted on a board; withdrawn on drop unless gathered.
pub(crate) struct Posted<'a> {
    stripe: &'a Stripe,
    ticket: u64,
}

impl Posted<'_> {
    /// Takes the changes back: `false` if a holder gathered them already.
    pub(crate) fn withdraw(self) -> bool {
        let withdrawn = self.stripe.withdraw(self.ticket);
        std::mem::forget(self);
        withdrawn
    }
}

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        self.stripe.withdraw(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Fields, Meta};

    fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:a>22}")).unwrap()
    }

    fn record() -> Record {
        Record {
            meta: Meta::new(0, 1_000, None),
            fields: Fields::default(),
        }
    }

    #[tokio::test]
    async fn the_holder_gathers_only_its_sessions_postings() {
        let stripe = Stripes::new();
        let s = stripe.of(&id("a"));
        let turn = s.take_turn().await;
        let a = s.post(id("a"), Box::new(1_u32));
        let b = s.post(id("b"), Box::new(2_u32));
        let gathered = turn.gather(&id("a"));
        assert_eq!(gathered.len(), 1);
        assert_eq!(gathered[0].downcast_ref::<u32>(), Some(&1));
        assert!(!a.withdraw(), "gathered already");
        assert!(b.withdraw(), "still posted");
        assert!(turn.gather(&id("b")).is_empty());
    }

    #[tokio::test]
    async fn the_turn_is_taken_at_once_only_when_free() {
        let stripes = Stripes::new();
        let s = stripes.of(&id("a"));
        let held = s.try_take_turn().expect("free");
        assert!(s.try_take_turn().is_none(), "held");
        drop(held);
        assert!(s.try_take_turn().is_some(), "free again");
    }

    #[tokio::test]
    async fn a_dropped_posting_is_withdrawn() {
        let stripe = Stripes::new();
        let s = stripe.of(&id("a"));
        drop(s.post(id("a"), Box::new(1_u32)));
        assert!(s.take_turn().await.gather(&id("a")).is_empty());
    }

    /// A stripe that outlives the test's tasks.
    fn leaked() -> &'static Stripe {
        Box::leak(Box::new(Stripe {
            turn: tokio::sync::Mutex::new(()),
            board: Mutex::new(Board::default()),
            tickets: AtomicU64::new(0),
        }))
    }

    #[tokio::test]
    async fn the_last_record_is_kept_only_while_commits_wait() {
        let s = leaked();
        let first = s.take_turn().await;
        first.remember(&id("a"), record());
        assert!(first.last(&id("a")).is_none(), "nobody waits: not kept");
        let next = tokio::spawn(async move {
            let turn = s.take_turn().await;
            (turn.last(&id("a")), turn.last(&id("b")))
        });
        while s.board().waiting == 0 {
            tokio::task::yield_now().await;
        }
        first.remember(&id("a"), record());
        drop(first);
        let (a, b) = next.await.unwrap();
        assert_eq!(a, Some(record()), "the waiter sees the last write");
        assert_eq!(b, None, "keyed by session");
    }

    #[tokio::test]
    async fn the_last_record_is_dropped_when_nobody_waits_and_forgotten_on_delete() {
        let s = leaked();
        s.board().waiting = 1;
        let turn = s.take_turn().await;
        turn.remember(&id("a"), record());
        assert!(turn.last(&id("a")).is_some());
        s.forget(&id("a"));
        assert!(turn.last(&id("a")).is_none());
        turn.remember(&id("a"), record());
        s.board().waiting = 0;
        drop(turn);
        assert!(s.board().last.is_none(), "dropped with the last turn");
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_not_counted() {
        let stripes = Stripes::new();
        let s = stripes.of(&id("a"));
        let held = s.take_turn().await;
        let wait = tokio::time::timeout(std::time::Duration::from_millis(1), s.take_turn());
        assert!(wait.await.is_err(), "the turn is held");
        assert_eq!(s.board().waiting, 0);
        drop(held);
    }
}

//! The commit planner: pure decisions about what a commit writes and what
//! the client is told, from the session's state, the configuration, the
//! time and what the store answered. No I/O here; `session.rs` executes the
//! plans and every transition is unit-tested below.

use bytes::Bytes;

use crate::id::SessionId;
use crate::principal::PrincipalWrite;
use crate::record::Meta;
use crate::store::{Write, WriteKind, Written};

/// The rules of one manager's commits (times in milliseconds), derived
/// from its `Config` once, when the manager is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Rotate the id once it is this old (`None`: never).
    pub(crate) renew_ms: Option<u64>,
    /// How long an auto-renewed id still resolves to its session.
    pub(crate) grace_ms: u64,
    /// Refresh the stored idle deadline at most this often (`None`: a tenth
    /// of the session's idle timeout).
    pub(crate) touch_after_ms: Option<u64>,
    /// The configured cookie lifetime.
    pub(crate) cookie_ms: u64,
    /// `cookieSessionOnly`.
    pub(crate) cookie_session_only: bool,
    /// The configured idle timeout (a session's own may be longer: remember-me).
    pub(crate) idle_ms: u64,
    /// `maxSessionBytes`.
    pub(crate) max_bytes: usize,
    /// `maxSessionsPerUser`.
    pub(crate) max_sessions_per_user: Option<usize>,
}

/// What the client must be told after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdWrite {
    Nothing,
    /// Send the id, with this cookie lifetime in seconds (`None`: a
    /// browser-session cookie).
    Set(SessionId, Option<u64>),
    Clear,
}

/// Whether the id is old enough to be rotated at this commit.
pub(crate) fn renew_due(policy: &Rules, id_issued_at: u64, now: u64) -> bool {
    policy
        .renew_ms
        .is_some_and(|after| now.saturating_sub(id_issued_at) >= after)
}

/// Whether the stored idle deadline must be refreshed at this commit.
///
/// The store's `last_access` moves only at writes, so between two refreshes
/// a session can expire up to `touch_after` earlier than `idle_timeout`
/// after its last use: the idle timeout is exact to within `touch_after`.
pub(crate) fn touch_due(policy: &Rules, stored: &Meta, now: u64) -> bool {
    let every = policy.touch_after_ms.unwrap_or(stored.idle_timeout_ms / 10);
    now.saturating_sub(stored.last_access) >= every
}

/// The cookie lifetime in seconds for a session with `meta` at `now`;
/// `None` is a browser-session cookie.
///
/// The cookie lives at least `cookieExpiration`, and at least as long as the
/// session's own idle timeout (remember-me), never past the absolute
/// deadline. Under `cookieSessionOnly` the cookie is a session cookie unless
/// the session's own idle timeout was set longer than the configured one (a
/// per-session override such as remember-me): a long configured idle timeout
/// alone never makes cookies persistent.
pub(crate) fn cookie_max_age(policy: &Rules, meta: &Meta, now: u64) -> Option<u64> {
    let idle = meta.idle_timeout_ms;
    let life = if policy.cookie_session_only {
        (idle > policy.idle_ms).then_some(idle.max(policy.cookie_ms))
    } else {
        Some(policy.cookie_ms.max(idle))
    }?;
    let life = match meta.absolute_deadline {
        Some(deadline) => life.min(deadline.saturating_sub(now)),
        None => life,
    };
    Some(life.div_ceil(1000))
}

/// One struct field as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPlan {
    pub(crate) name: &'static str,
    /// The bytes in the store (as loaded or last written).
    pub(crate) stored: Option<Bytes>,
    /// The bytes the session should hold after the commit (`None`: absent).
    pub(crate) want: Option<Bytes>,
    /// Whether the commit must check that `stored` is still what the store holds.
    pub(crate) expect: bool,
}

/// Where the session stands in the store when the commit starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Not stored: a fresh session (the write creates it).
    Fresh,
    /// Stored under the current id.
    Stored,
    /// Stored under `from`; the commit moves it to the current id.
    Rotating { from: SessionId, grace_ms: u64 },
}

impl Standing {
    /// The id the store holds the session under, for a session whose id is
    /// `current` (`None` when it is not stored).
    pub(crate) fn stored_id<'a>(&'a self, current: &'a SessionId) -> Option<&'a SessionId> {
        match self {
            Self::Fresh => None,
            Self::Stored => Some(current),
            Self::Rotating { from, .. } => Some(from),
        }
    }
}

/// The input of [`plan_write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Input {
    pub(crate) id: SessionId,
    pub(crate) standing: Standing,
    /// The metadata as the store holds it (`None` when fresh).
    pub(crate) stored_meta: Option<Meta>,
    /// The session's metadata now.
    pub(crate) meta: Meta,
    /// The metadata other than `last_access` changed in this request.
    pub(crate) meta_changed: bool,
    pub(crate) fields: Vec<FieldPlan>,
    /// What the write does to the session's principal (`None`: it has none
    /// before or after).
    pub(crate) principal: Option<PrincipalPart>,
}

/// The principal decision of a commit (`principal::principal_write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalPart {
    pub(crate) write: PrincipalWrite,
    /// The principal field's index in [`Input::fields`].
    pub(crate) field: usize,
}

/// What a commit does with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to write.
    Nothing,
    /// The session holds no data: delete what is stored (`Some`) and forget it.
    Drop(Option<SessionId>),
    /// One conditional write.
    Write(Box<Write>),
    /// The write would make the session larger than `maxSessionBytes`.
    TooLarge { size: usize, limit: usize },
}

/// Whether a commit in which no field changed can skip [`plan_write`]: the
/// session is stored under its current id with data, its metadata is
/// unchanged and no touch is due, so the plan would be [`Plan::Nothing`]
/// (a test checks the two agree). A read-only request then builds no
/// [`Input`].
pub(crate) fn unchanged_needs_nothing(
    policy: &Rules,
    standing: &Standing,
    stored_meta: Option<&Meta>,
    meta_changed: bool,
    has_stored_data: bool,
    now: u64,
) -> bool {
    *standing == Standing::Stored
        && !meta_changed
        && has_stored_data
        && stored_meta.is_some_and(|stored| !touch_due(policy, stored, now))
}

/// Decides the store write of a commit.
pub(crate) fn plan_write(policy: &Rules, input: &Input, now: u64) -> Plan {
    let has_data = input.fields.iter().any(|f| f.want.is_some());
    if !has_data {
        return Plan::Drop(input.standing.stored_id(&input.id).cloned());
    }
    let mut set = Vec::new();
    let mut remove = Vec::new();
    let mut size = 0;
    for field in &input.fields {
        if let Some(want) = &field.want {
            size += field.name.len() + want.len();
        }
        if field.want == field.stored {
            continue;
        }
        match &field.want {
            Some(want) => set.push((field.name, want.clone())),
            None => remove.push(field.name),
        }
    }
    if !set.is_empty() && size > policy.max_bytes {
        return Plan::TooLarge {
            size,
            limit: policy.max_bytes,
        };
    }
    let mut expect: Vec<_> = input
        .fields
        .iter()
        .filter(|f| f.expect)
        .map(|f| (f.name, f.stored.clone()))
        .collect();
    let mut meta = input.meta;
    meta.last_access = now;
    let (id, kind, meta_changed) = match &input.standing {
        Standing::Fresh => (input.id.clone(), WriteKind::Create, true),
        Standing::Rotating { from, grace_ms } => {
            let full = input
                .fields
                .iter()
                .filter_map(|f| f.want.clone().map(|w| (f.name, w)))
                .collect();
            let loaded = input
                .fields
                .iter()
                .map(|f| (f.name, f.stored.clone()))
                .collect();
            let kind = WriteKind::Rotate {
                to: input.id.clone(),
                grace_ms: *grace_ms,
                full,
                loaded,
            };
            (from.clone(), kind, true)
        }
        Standing::Stored => {
            let touch = input
                .stored_meta
                .as_ref()
                .is_none_or(|stored| touch_due(policy, stored, now));
            if set.is_empty() && remove.is_empty() && !input.meta_changed && !touch {
                return Plan::Nothing;
            }
            (input.id.clone(), WriteKind::Update, input.meta_changed)
        }
    };
    // A rotation that keeps the principal expects the principal field, so a
    // concurrent change of the principal turns the rotation into a conflict
    // (replayed with the new principal) instead of moving the session under
    // the index of the old one.
    if let (
        Some(PrincipalPart {
            write: PrincipalWrite::Keep(_),
            field,
        }),
        WriteKind::Rotate { .. },
    ) = (&input.principal, &kind)
    {
        if let Some(field) = input.fields.get(*field) {
            if !expect.iter().any(|(name, _)| *name == field.name) {
                expect.push((field.name, field.stored.clone()));
            }
        }
    }
    Plan::Write(Box::new(Write {
        id,
        kind,
        now,
        meta,
        meta_changed,
        ttl_ms: meta.ttl_ms(now),
        set,
        remove,
        expect,
        principal: input.principal.as_ref().map(|p| p.write.clone()),
    }))
}

/// What to do after the store answered a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// The write applied.
    Done,
    /// The session is gone: keep nothing, clear the client's id.
    Gone,
    /// Write to this id instead (the session was rotated by a concurrent
    /// request); `keep_rotation` when this commit must still rotate away
    /// from it (a `regenerate`, which must not share the grace period).
    Retarget { to: SessionId, keep_rotation: bool },
    /// Fields changed under the request: reload from the answer, replay, retry.
    Replay,
    /// Too many retries or hops: give up with a conflict.
    GiveUp,
}

/// The most times one commit re-applies its changes after a conflict.
pub(crate) const MAX_RETRIES: u32 = 32;
/// The most rotation tombstones one commit follows.
pub(crate) const MAX_HOPS: u32 = 4;

/// Decides the next step from the store's answer.
pub(crate) fn next_step(standing: &Standing, written: &Written, retries: u32, hops: u32) -> Next {
    match written {
        Written::Done => Next::Done,
        Written::Gone => Next::Gone,
        Written::Moved(_) if hops >= MAX_HOPS => Next::GiveUp,
        Written::Moved(to) => Next::Retarget {
            to: to.clone(),
            keep_rotation: matches!(standing, Standing::Rotating { grace_ms: 0, .. }),
        },
        Written::Conflict(_) if retries >= MAX_RETRIES => Next::GiveUp,
        Written::Conflict(_) => Next::Replay,
    }
}

/// What the client is told after a commit that ended in `Done` (or wrote
/// nothing). `wrote`: a write was applied; `id_news`: the client holds
/// another id than the session's (a rotation, a redirect at load, a new
/// session). A client holding an id that resolves to nothing is the
/// caller's case (`State::finish`): this is only asked for a stored session.
pub(crate) fn client_write(
    policy: &Rules,
    id: &SessionId,
    meta: &Meta,
    now: u64,
    wrote: bool,
    id_news: bool,
) -> IdWrite {
    if wrote || id_news {
        IdWrite::Set(id.clone(), cookie_max_age(policy, meta, now))
    } else {
        IdWrite::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn policy() -> Rules {
        Rules {
            renew_ms: Some(30 * MIN),
            grace_ms: 5_000,
            touch_after_ms: None,
            cookie_ms: 120 * MIN,
            cookie_session_only: false,
            idle_ms: 30 * MIN,
            max_bytes: 100,
            max_sessions_per_user: None,
        }
    }

    fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:0>20}")).unwrap()
    }

    fn field(
        name: &'static str,
        stored: Option<&'static [u8]>,
        want: Option<&'static [u8]>,
    ) -> FieldPlan {
        FieldPlan {
            name,
            stored: stored.map(Bytes::from_static),
            want: want.map(Bytes::from_static),
            expect: false,
        }
    }

    fn input(standing: Standing, fields: Vec<FieldPlan>) -> Input {
        let meta = Meta::new(0, 30 * MIN, None);
        Input {
            id: id("cur"),
            stored_meta: (standing != Standing::Fresh).then_some(meta),
            standing,
            meta,
            meta_changed: false,
            fields,
            principal: None,
        }
    }

    fn write(plan: Plan) -> Write {
        match plan {
            Plan::Write(w) => *w,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn the_shortcut_for_unchanged_sessions_agrees_with_the_planner() {
        let standings = [
            Standing::Fresh,
            Standing::Stored,
            Standing::Rotating {
                from: id("old"),
                grace_ms: 5_000,
            },
        ];
        for standing in standings {
            for meta_changed in [false, true] {
                for stored in [None, Some(&b"1"[..])] {
                    for now in [0, 2 * MIN, 3 * MIN, 60 * MIN] {
                        let mut i = input(standing.clone(), vec![field("a", stored, stored)]);
                        i.meta_changed = meta_changed;
                        let shortcut = unchanged_needs_nothing(
                            &policy(),
                            &i.standing,
                            i.stored_meta.as_ref(),
                            i.meta_changed,
                            stored.is_some(),
                            now,
                        );
                        if shortcut {
                            assert_eq!(
                                plan_write(&policy(), &i, now),
                                Plan::Nothing,
                                "{i:?} at {now}"
                            );
                        }
                        // It skips every read-only commit the planner leaves alone.
                        if plan_write(&policy(), &i, now) == Plan::Nothing {
                            assert!(shortcut, "{i:?} at {now}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_fresh_session_with_data_is_created_whole() {
        let i = input(
            Standing::Fresh,
            vec![field("a", None, Some(b"1")), field("b", None, None)],
        );
        let w = write(plan_write(&policy(), &i, 10));
        assert_eq!(w.kind, WriteKind::Create);
        assert_eq!(w.set, vec![("a", Bytes::from_static(b"1"))]);
        assert!(w.remove.is_empty());
        assert!(w.meta_changed);
        assert_eq!(w.meta.last_access, 10);
    }

    #[test]
    fn a_fresh_session_without_data_writes_nothing() {
        let i = input(Standing::Fresh, vec![field("a", None, None)]);
        assert_eq!(plan_write(&policy(), &i, 10), Plan::Drop(None));
    }

    #[test]
    fn an_emptied_stored_session_is_dropped() {
        let i = input(Standing::Stored, vec![field("a", Some(b"1"), None)]);
        assert_eq!(plan_write(&policy(), &i, 10), Plan::Drop(Some(id("cur"))));
        let r = input(
            Standing::Rotating {
                from: id("old"),
                grace_ms: 0,
            },
            vec![field("a", Some(b"1"), None)],
        );
        assert_eq!(plan_write(&policy(), &r, 10), Plan::Drop(Some(id("old"))));
    }

    #[test]
    fn an_unchanged_session_writes_only_when_a_touch_is_due() {
        let i = input(Standing::Stored, vec![field("a", Some(b"1"), Some(b"1"))]);
        // touchAfter defaults to a tenth of the idle timeout: 3 minutes.
        assert_eq!(plan_write(&policy(), &i, 3 * MIN - 1), Plan::Nothing);
        let w = write(plan_write(&policy(), &i, 3 * MIN));
        assert_eq!(w.kind, WriteKind::Update);
        assert!(w.set.is_empty() && w.remove.is_empty() && !w.meta_changed);
        assert_eq!(w.meta.last_access, 3 * MIN);
        let every = Rules {
            touch_after_ms: Some(0),
            ..policy()
        };
        assert!(matches!(plan_write(&every, &i, 1), Plan::Write(_)));
    }

    #[test]
    fn only_changed_fields_are_written_with_their_expectations() {
        let mut changed = field("a", Some(b"1"), Some(b"2"));
        changed.expect = true;
        let i = input(
            Standing::Stored,
            vec![
                changed,
                field("b", Some(b"x"), Some(b"x")),
                field("c", Some(b"y"), None),
            ],
        );
        let w = write(plan_write(&policy(), &i, 5));
        assert_eq!(w.set, vec![("a", Bytes::from_static(b"2"))]);
        assert_eq!(w.remove, vec!["c"]);
        assert_eq!(w.expect, vec![("a", Some(Bytes::from_static(b"1")))]);
    }

    #[test]
    fn a_per_session_idle_timeout_is_written_as_metadata() {
        let mut i = input(Standing::Stored, vec![field("a", Some(b"1"), Some(b"1"))]);
        i.meta.idle_timeout_ms = 30 * 24 * 60 * MIN;
        i.meta_changed = true;
        let w = write(plan_write(&policy(), &i, 5));
        assert!(w.meta_changed);
        assert_eq!(w.ttl_ms, 30 * 24 * 60 * MIN);
    }

    #[test]
    fn rotation_carries_the_full_record_and_what_was_loaded() {
        let i = input(
            Standing::Rotating {
                from: id("old"),
                grace_ms: 5_000,
            },
            vec![
                field("a", Some(b"1"), Some(b"1")),
                field("b", None, Some(b"2")),
            ],
        );
        let w = write(plan_write(&policy(), &i, 5));
        assert_eq!(w.id, id("old"));
        let WriteKind::Rotate {
            to,
            grace_ms,
            full,
            loaded,
        } = w.kind
        else {
            panic!("not a rotation");
        };
        assert_eq!(to, id("cur"));
        assert_eq!(grace_ms, 5_000);
        assert_eq!(full.len(), 2);
        assert_eq!(
            loaded,
            vec![("a", Some(Bytes::from_static(b"1"))), ("b", None)]
        );
        assert_eq!(w.set, vec![("b", Bytes::from_static(b"2"))]);
    }

    #[test]
    fn only_writes_that_exceed_the_limit_are_refused() {
        let big: &'static [u8] = &[0; 200];
        // Reading, touching or shrinking an oversized session is fine.
        let read = input(Standing::Stored, vec![field("a", Some(big), Some(big))]);
        assert!(matches!(
            plan_write(&policy(), &read, 3 * MIN),
            Plan::Write(_)
        ));
        let shrink = input(
            Standing::Stored,
            vec![
                field("a", Some(big), Some(big)),
                field("b", Some(b"1"), None),
            ],
        );
        assert!(matches!(plan_write(&policy(), &shrink, 1), Plan::Write(_)));
        // Adding to it is refused.
        let grow = input(
            Standing::Stored,
            vec![
                field("a", Some(big), Some(big)),
                field("b", None, Some(b"1")),
            ],
        );
        assert!(matches!(
            plan_write(&policy(), &grow, 1),
            Plan::TooLarge {
                size: 203,
                limit: 100
            }
        ));
    }

    #[test]
    fn renewal_and_touch_timing() {
        assert!(!renew_due(&policy(), 0, 30 * MIN - 1));
        assert!(renew_due(&policy(), 0, 30 * MIN));
        let off = Rules {
            renew_ms: None,
            ..policy()
        };
        assert!(!renew_due(&off, 0, u64::MAX));
        let meta = Meta::new(0, 10_000, None);
        assert!(!touch_due(&policy(), &meta, 999));
        assert!(touch_due(&policy(), &meta, 1_000));
    }

    #[test]
    fn the_cookie_lives_as_long_as_the_session_can() {
        let p = policy();
        let plain = Meta::new(0, 30 * MIN, None);
        assert_eq!(cookie_max_age(&p, &plain, 0), Some(120 * 60));
        // Remember-me: a longer idle timeout gives a longer cookie…
        let remember = Meta::new(0, 30 * 24 * 60 * MIN, None);
        assert_eq!(cookie_max_age(&p, &remember, 0), Some(30 * 24 * 3600));
        // …also under cookieSessionOnly, where a plain session gets a session cookie.
        let only = Rules {
            cookie_session_only: true,
            ..p
        };
        assert_eq!(cookie_max_age(&only, &plain, 0), None);
        assert_eq!(cookie_max_age(&only, &remember, 0), Some(30 * 24 * 3600));
        // A configured idle timeout longer than cookieExpiration is no
        // override: every session keeps a session cookie…
        let long_idle = Rules {
            idle_ms: 8 * 60 * MIN,
            ..only
        };
        let configured = Meta::new(0, 8 * 60 * MIN, None);
        assert_eq!(cookie_max_age(&long_idle, &configured, 0), None);
        // …a shorter per-session one too; only a longer one persists, for at
        // least cookieExpiration.
        let shorter = Meta::new(0, 10 * MIN, None);
        assert_eq!(cookie_max_age(&only, &shorter, 0), None);
        let a_bit_longer = Meta::new(0, 40 * MIN, None);
        assert_eq!(cookie_max_age(&only, &a_bit_longer, 0), Some(120 * 60));
        // Never past the absolute deadline.
        let bounded = Meta::new(0, 30 * MIN, Some(60 * MIN));
        assert_eq!(cookie_max_age(&p, &bounded, 50 * MIN), Some(10 * 60));
        assert_eq!(cookie_max_age(&p, &bounded, 60 * MIN), Some(0));
    }

    #[test]
    fn store_answers_map_to_next_steps() {
        let stored = Standing::Stored;
        let renew = Standing::Rotating {
            from: id("old"),
            grace_ms: 5_000,
        };
        let regen = Standing::Rotating {
            from: id("old"),
            grace_ms: 0,
        };
        assert_eq!(next_step(&stored, &Written::Done, 0, 0), Next::Done);
        assert_eq!(next_step(&stored, &Written::Gone, 0, 0), Next::Gone);
        let moved = Written::Moved(id("new"));
        assert_eq!(
            next_step(&renew, &moved, 0, 0),
            Next::Retarget {
                to: id("new"),
                keep_rotation: false
            }
        );
        assert_eq!(
            next_step(&regen, &moved, 0, 0),
            Next::Retarget {
                to: id("new"),
                keep_rotation: true
            }
        );
        assert_eq!(next_step(&stored, &moved, 0, MAX_HOPS), Next::GiveUp);
        let conflict = Written::Conflict(crate::record::Record {
            meta: Meta::new(0, 1, None),
            fields: crate::record::Fields::default(),
        });
        assert_eq!(next_step(&stored, &conflict, 0, 0), Next::Replay);
        assert_eq!(next_step(&stored, &conflict, MAX_RETRIES, 0), Next::GiveUp);
    }

    #[test]
    fn the_client_hears_of_every_write_and_every_new_id() {
        let p = policy();
        let meta = Meta::new(0, 30 * MIN, None);
        assert_eq!(
            client_write(&p, &id("a"), &meta, 0, false, false),
            IdWrite::Nothing
        );
        assert_eq!(
            client_write(&p, &id("a"), &meta, 0, true, false),
            IdWrite::Set(id("a"), Some(7200))
        );
        assert_eq!(
            client_write(&p, &id("a"), &meta, 0, false, true),
            IdWrite::Set(id("a"), Some(7200))
        );
    }

    #[test]
    fn a_rotation_that_keeps_the_principal_expects_it() {
        let p = crate::principal::Principal::of("1").unwrap();
        let user = field("user", Some(b"\x01"), Some(b"\x01"));
        let other = field("n", None, Some(b"\x02"));
        let mut rotating = input(
            Standing::Rotating {
                from: id("old"),
                grace_ms: 0,
            },
            vec![user, other],
        );
        rotating.principal = Some(PrincipalPart {
            write: PrincipalWrite::Keep(p.clone()),
            field: 0,
        });
        let write = write(plan_write(&policy(), &rotating, MIN));
        assert_eq!(write.principal, Some(PrincipalWrite::Keep(p.clone())));
        assert_eq!(
            write.expect,
            vec![("user", Some(Bytes::from_static(b"\x01")))]
        );
        // An update keeps it without an expectation; a join expects nothing.
        let mut updating = rotating.clone();
        updating.standing = Standing::Stored;
        let write = write_of(&updating);
        assert!(write.expect.is_empty());
        rotating.principal = Some(PrincipalPart {
            write: PrincipalWrite::Join(p),
            field: 0,
        });
        assert!(write_of(&rotating).expect.is_empty());
    }

    fn write_of(input: &Input) -> Write {
        write(plan_write(&policy(), input, MIN))
    }
}

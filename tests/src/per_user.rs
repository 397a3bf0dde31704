//! Sessions per user, through the public API: listing, revocation, the cap,
//! rotation, expiry and revocation racing requests in flight. Part of the
//! acceptance suite (`acceptance_suite!`), so it runs on every store.

use std::sync::Arc;
use std::time::Duration;

use sessionkit::adapter::ResponseUpdate;
use sessionkit::clock::ManualClock;
use sessionkit::id::SessionId;
use sessionkit::store::DynSessionStore;
use sessionkit::store::WriteKind;
use sessionkit::{Config, Session, SessionHandle, SessionManager};

use crate::acceptance::{cookie_value, request, T0};
use crate::support::{Account, Call, RecordingStore, TestRequest, DEVICE, HITS, USER};

const MIN: Duration = Duration::from_secs(60);
const ALICE: u64 = 7;
const BOB: u64 = 8;

fn accounts(
    store: Arc<dyn DynSessionStore>,
    clock: &ManualClock,
    config: Config,
) -> SessionManager<Account> {
    SessionManager::builder(store)
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid config")
}

/// Auto-renew after 30 minutes (the default), an idle timeout of two hours:
/// a session 31 minutes old is due for renewal, not expired.
fn long_idle() -> Config {
    Config::builder()
        .idle_timeout(120 * MIN)
        .build()
        .expect("config")
}

fn with_cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

fn sent(update: &ResponseUpdate) -> String {
    cookie_value(update.set_cookie.as_deref().expect("a Set-Cookie")).to_owned()
}

fn clears(update: &ResponseUpdate) -> bool {
    update
        .set_cookie
        .as_deref()
        .is_some_and(|c| c.starts_with("session_id=;") && c.contains("Max-Age=0"))
}

/// Waits for requests to reach a gate; a bounded wait, so a regression
/// fails the test instead of hanging it.
async fn held(arrived: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(20), arrived)
        .await
        .expect("the requests never reached the store");
}

fn sid(id: &str) -> SessionId {
    SessionId::parse(id).expect("a session id")
}

/// A visit (an anonymous session with a device name), then a login on it:
/// `regenerate` and the user id, as an application does it. Returns the id.
async fn login(m: &SessionManager<Account>, device: &str, user: u64) -> String {
    let device = device.to_owned();
    let (_, update) = request(m, &TestRequest::new(), move |s| {
        s.set(DEVICE, device.clone())
    })
    .await
    .expect("visit");
    let visitor = sent(&update);
    let (_, update) = request(m, &with_cookie(&visitor), move |s| {
        s.regenerate().expect("new id");
        s.set(USER, Some(user));
    })
    .await
    .expect("login");
    let id = sent(&update);
    assert_ne!(id, visitor, "login gives a new id");
    id
}

/// A request with `id` that reads the session; whether it was still logged in.
async fn logged_in(m: &SessionManager<Account>, id: &str) -> bool {
    let (session, _) = request(m, &with_cookie(id), |_| {}).await.expect("request");
    session.get(USER).is_some()
}

fn handles(ids: &[&str]) -> Vec<SessionHandle> {
    ids.iter().map(|id| SessionHandle::of(&sid(id))).collect()
}

async fn listed(m: &SessionManager<Account>, user: u64) -> Vec<SessionHandle> {
    m.list_sessions(&user, None)
        .await
        .expect("list")
        .into_iter()
        .map(|info| info.handle)
        .collect()
}

/// Three logins of one user are listed, oldest first, with handles (never
/// ids), times, the current flag and a typed snapshot.
pub async fn logins_of_one_user_are_listed(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let m = accounts(store, &clock, Config::default());
    let mut ids = Vec::new();
    for device in ["phone", "laptop", "tablet"] {
        ids.push(login(&m, device, ALICE).await);
        clock.advance(MIN);
    }
    // Someone else, and an anonymous visitor: not listed.
    login(&m, "bob's", BOB).await;
    request(&m, &TestRequest::new(), |s| s.set(DEVICE, "kiosk".into()))
        .await
        .expect("visit");

    let current = sid(&ids[1]);
    let list = m.list_sessions(&ALICE, Some(&current)).await.expect("list");
    let devices: Vec<&str> = list.iter().map(|i| i.data.device.as_str()).collect();
    assert_eq!(devices, ["phone", "laptop", "tablet"]);
    assert_eq!(
        list.iter().map(|i| i.handle.clone()).collect::<Vec<_>>(),
        handles(&[&ids[0], &ids[1], &ids[2]])
    );
    assert_eq!(
        list.iter().map(|i| i.current).collect::<Vec<_>>(),
        [false, true, false]
    );
    for (k, info) in list.iter().enumerate() {
        assert!(
            !ids.iter()
                .any(|id| info.handle.as_str().contains(id.as_str())),
            "a handle is not an id"
        );
        let at = T0 + k as u64 * 60_000;
        assert_eq!((info.created_at, info.last_access), (at, at));
        assert_eq!(info.expires_at, at + 30 * 60_000);
        assert_eq!(info.data.user_id, Some(ALICE));
    }
    assert_eq!(listed(&m, BOB).await.len(), 1);
    assert!(listed(&m, 99).await.is_empty());
    assert!(m
        .list_sessions(&None::<u64>, None)
        .await
        .expect("anonymous")
        .is_empty());
}

/// Revoke one by handle (only the user's own), all others, then all; the
/// next request with a revoked id is a fresh anonymous session.
pub async fn revoke_one_others_and_all(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let m = accounts(store, &clock, Config::default());
    let a = login(&m, "a", ALICE).await;
    let b = login(&m, "b", ALICE).await;
    let c = login(&m, "c", ALICE).await;
    let bobs = login(&m, "bob", BOB).await;

    let b_handle = SessionHandle::of(&sid(&b));
    assert!(
        !m.revoke_session(&BOB, &b_handle).await.expect("revoke"),
        "not Bob's session"
    );
    assert!(logged_in(&m, &b).await);
    assert!(m.revoke_session(&ALICE, &b_handle).await.expect("revoke"));
    assert!(
        !m.revoke_session(&ALICE, &b_handle).await.expect("again"),
        "already gone"
    );
    assert!(
        !logged_in(&m, &b).await,
        "revoked: a fresh, anonymous session"
    );
    let (fresh, _) = request(&m, &with_cookie(&b), |_| {})
        .await
        .expect("request");
    assert!(fresh.fresh());
    assert_ne!(fresh.id().as_str(), b);

    assert_eq!(
        m.revoke_other_sessions(&ALICE, &sid(&a))
            .await
            .expect("others"),
        1
    );
    assert!(logged_in(&m, &a).await);
    assert!(!logged_in(&m, &c).await);
    assert_eq!(listed(&m, ALICE).await, handles(&[&a]));

    let d = login(&m, "d", ALICE).await;
    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("all"), 2);
    assert!(!logged_in(&m, &a).await);
    assert!(!logged_in(&m, &d).await);
    assert!(listed(&m, ALICE).await.is_empty());
    assert!(logged_in(&m, &bobs).await, "another user's sessions stay");
    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("none left"), 0);
}

/// `maxSessionsPerUser`: a login beyond the cap revokes the least recently
/// used session, never the one logging in.
pub async fn the_cap_evicts_the_least_recently_used(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .max_sessions_per_user(2_u32)
        .build()
        .expect("config");
    let m = accounts(store, &clock, config);
    let a = login(&m, "a", ALICE).await;
    clock.advance(5 * MIN);
    let b = login(&m, "b", ALICE).await;
    clock.advance(5 * MIN);
    // `a` is used again (the idle deadline is refreshed): `b` is now the
    // least recently used.
    request(&m, &with_cookie(&a), |s| s.update(HITS, |n| *n += 1))
        .await
        .expect("use a");
    clock.advance(5 * MIN);
    let c = login(&m, "c", ALICE).await;
    let mut expected = handles(&[&a, &c]);
    let mut got = listed(&m, ALICE).await;
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert!(!logged_in(&m, &b).await, "evicted");
    assert!(logged_in(&m, &a).await && logged_in(&m, &c).await);
    // Other users are not counted.
    login(&m, "bob", BOB).await;
    assert_eq!(listed(&m, ALICE).await.len(), 2);
}

/// Auto-renew and regenerate move the session's one entry to its new id;
/// revocation then reaches the session whatever id the client still holds.
pub async fn rotation_keeps_one_entry(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let m = accounts(store, &clock, long_idle());
    let a = login(&m, "a", ALICE).await;
    clock.advance(31 * MIN);
    let (_, update) = request(&m, &with_cookie(&a), |_| {})
        .await
        .expect("renewed");
    let b = sent(&update);
    assert_ne!(a, b, "auto-renewed");
    let list = m.list_sessions(&ALICE, Some(&sid(&b))).await.expect("list");
    assert_eq!(
        list.iter()
            .map(|i| (i.handle.clone(), i.current))
            .collect::<Vec<_>>(),
        [(SessionHandle::of(&sid(&b)), true)]
    );
    let (_, update) = request(&m, &with_cookie(&b), |s| s.regenerate().expect("id"))
        .await
        .expect("regenerated");
    let c = sent(&update);
    assert_eq!(listed(&m, ALICE).await, handles(&[&c]));
    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("all"), 1);
    for id in [&a, &b, &c] {
        assert!(!logged_in(&m, id).await, "{id} revoked");
    }
}

/// Expired sessions leave the index (idle expiry on an injected clock; no
/// keyspace notification involved) and are not counted by revocation.
pub async fn expired_sessions_leave_the_index(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(30 * MIN)
        .disable_auto_renew(true)
        .build()
        .expect("config");
    let m = accounts(store, &clock, config);
    let a = login(&m, "a", ALICE).await;
    let b = login(&m, "b", ALICE).await;
    clock.advance(20 * MIN);
    request(&m, &with_cookie(&b), |s| s.update(HITS, |n| *n += 1))
        .await
        .expect("b stays active");
    clock.advance(15 * MIN);
    assert_eq!(listed(&m, ALICE).await, handles(&[&b]), "a expired");
    assert!(!logged_in(&m, &a).await);
    clock.advance(31 * MIN);
    assert!(listed(&m, ALICE).await.is_empty(), "all expired");
    let c = login(&m, "c", ALICE).await;
    assert_eq!(listed(&m, ALICE).await, handles(&[&c]));
    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("all"), 1);
}

/// The guarantee: after `revoke_all_sessions` returns, no session the user
/// had is served again, whatever was in flight. Requests are held at the
/// store (gates, no sleeps) while the revocation runs: the writes of an
/// auto-renewal, a `regenerate` and a plain update of three of the user's
/// sessions, and a fourth request right after its read. None of them brings
/// a session back or hands out an id; every later request is anonymous.
pub async fn revoke_all_wins_over_requests_in_flight(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let clock = ManualClock::new(T0);
    let m = accounts(Arc::new(rec.clone()), &clock, long_idle());
    let a = login(&m, "a", ALICE).await;
    let b = login(&m, "b", ALICE).await;
    clock.advance(31 * MIN);
    let c = login(&m, "c", ALICE).await;
    let d = login(&m, "d", ALICE).await;

    let writes = rec.gate_writes();
    let in_flight = |id: &str, f: fn(&Session<Account>)| {
        let (m, req) = (m.clone(), with_cookie(id));
        tokio::spawn(async move { request(&m, &req, f).await })
    };
    // `a`: due for auto-renewal; `b`: regenerate; `c`: a plain update.
    let renew = in_flight(&a, |s| s.update(HITS, |n| *n += 1));
    let regen = in_flight(&b, |s| s.regenerate().expect("id"));
    let update = in_flight(&c, |s| s.update(HITS, |n| *n += 1));
    held(writes.arrived(3)).await;
    let writes_held = rec.take_calls();
    assert!(
        writes_held
            .iter()
            .filter_map(Call::as_write)
            .any(|w| matches!(
                w.kind,
                WriteKind::Rotate {
                    grace_ms: 5_000,
                    ..
                }
            )),
        "an auto-renewal is held: {writes_held:?}"
    );
    // `d`: a request that has read the session but not yet run its handler
    // (the load gate holds after the read).
    let loads = rec.gate_loads();
    let late = in_flight(&d, |s| s.update(HITS, |n| *n += 1));
    held(loads.arrived(1)).await;

    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("revoke"), 4);

    writes.open();
    loads.open();
    rec.ungate();
    for (name, task) in [
        ("renew", renew),
        ("regenerate", regen),
        ("update", update),
        ("loaded before", late),
    ] {
        let (session, update) = task.await.expect("task").expect("request");
        assert!(
            update
                .set_cookie
                .as_deref()
                .is_none_or(|c| cookie_value(c).is_empty()),
            "{name}: no id is handed out: {update:?}"
        );
        assert!(
            m.load_by_id(session.id().as_str())
                .await
                .expect("load")
                .is_none(),
            "{name}: nothing stored under the id the request ended with"
        );
    }
    // Any request after the revocation, with any id the user's clients hold.
    for id in [&a, &b, &c, &d] {
        let (session, update) = request(&m, &with_cookie(id), |_| {})
            .await
            .expect("request");
        assert!(
            session.fresh() && session.get(USER).is_none(),
            "{id} is not served again"
        );
        assert!(
            clears(&update),
            "the client holding {id} is told to drop it: {update:?}"
        );
    }
    assert!(listed(&m, ALICE).await.is_empty());
}

/// Changing the principal moves the entry; clearing it, destroy and reset
/// remove it; revocation of the old principal leaves the session alone.
pub async fn changing_or_clearing_the_principal_moves_the_entry(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let m = accounts(store, &clock, Config::default());
    let a = login(&m, "a", ALICE).await;
    request(&m, &with_cookie(&a), |s| s.set(USER, Some(BOB)))
        .await
        .expect("switch user");
    assert!(listed(&m, ALICE).await.is_empty());
    assert_eq!(listed(&m, BOB).await, handles(&[&a]));
    assert_eq!(m.revoke_all_sessions(&ALICE).await.expect("revoke"), 0);
    assert!(
        logged_in(&m, &a).await,
        "now Bob's: Alice's revocation leaves it"
    );

    request(&m, &with_cookie(&a), |s| s.set(USER, None))
        .await
        .expect("log out, keep the session");
    assert!(listed(&m, BOB).await.is_empty());
    assert_eq!(m.revoke_all_sessions(&BOB).await.expect("revoke"), 0);
    let (anonymous, _) = request(&m, &with_cookie(&a), |_| {})
        .await
        .expect("request");
    assert!(!anonymous.fresh(), "still a session, anonymous");

    let b = login(&m, "b", BOB).await;
    request(&m, &with_cookie(&b), |s| s.destroy())
        .await
        .expect("destroy");
    assert!(listed(&m, BOB).await.is_empty());
    let c = login(&m, "c", BOB).await;
    request(&m, &with_cookie(&c), |s| s.reset().expect("reset"))
        .await
        .expect("reset");
    assert!(listed(&m, BOB).await.is_empty());
}

/// A session without a principal never asks the store about the index and
/// carries no principal part in its writes; a login's write does.
pub async fn anonymous_sessions_never_touch_the_index(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let clock = ManualClock::new(T0);
    let m = accounts(Arc::new(rec.clone()), &clock, long_idle());
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(DEVICE, "x".into()))
        .await
        .expect("visit");
    let id = sent(&update);
    request(&m, &with_cookie(&id), |s| s.update(HITS, |n| *n += 1))
        .await
        .expect("update");
    clock.advance(31 * MIN);
    let (_, update) = request(&m, &with_cookie(&id), |s| s.update(HITS, |n| *n += 1))
        .await
        .expect("renewed");
    let id = sent(&update);
    request(&m, &with_cookie(&id), |s| s.destroy())
        .await
        .expect("destroy");
    let calls = rec.take_calls();
    assert!(
        calls.iter().filter_map(Call::as_write).count() >= 3,
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| matches!(c, Call::Load(_) | Call::Delete(_))
                || c.as_write().is_some_and(|w| w.principal.is_none())),
        "anonymous: no principal part, no index call: {calls:?}"
    );
    let a = login(&m, "a", ALICE).await;
    request(&m, &with_cookie(&a), |s| s.update(HITS, |n| *n += 1))
        .await
        .expect("update");
    let principals: Vec<_> = rec
        .take_calls()
        .into_iter()
        .filter_map(|c| c.as_write().map(|w| w.principal.clone()))
        .collect();
    let p = sessionkit::store::Principal::of(&ALICE).expect("principal");
    assert_eq!(
        principals,
        [
            None,
            Some(sessionkit::store::PrincipalWrite::Join(p.clone())),
            Some(sessionkit::store::PrincipalWrite::Keep(p)),
        ]
    );
}

//! The acceptance suite: every behaviour of the runtime, written once and run
//! against every store. Each case takes a fresh store from the caller.
//!
//! Time is a [`ManualClock`], so timeouts are exact and instant.

use std::sync::Arc;
use std::time::Duration;

use sessionkit::adapter::{ResponseUpdate, SourceKind};
use sessionkit::clock::ManualClock;
use sessionkit::store::DynSessionStore;
use sessionkit::store::WriteKind;
use sessionkit::{Config, Extractor, Session, SessionError, SessionManager};

pub use crate::per_user::{
    anonymous_sessions_never_touch_the_index, changing_or_clearing_the_principal_moves_the_entry,
    expired_sessions_leave_the_index, logins_of_one_user_are_listed,
    revoke_all_wins_over_requests_in_flight, revoke_one_others_and_all, rotation_keeps_one_entry,
    the_cap_evicts_the_least_recently_used,
};
use crate::support::{
    Call, Profile, ProfileV2, RecordingStore, TestRequest, NAME, TAGS, USER_ID, V2_VISITS, VISITS,
};

/// The clock's start: 2026-01-01, so timestamps look real.
pub const T0: u64 = 1_767_225_600_000;
const MIN: Duration = Duration::from_secs(60);

/// Expands into one `#[tokio::test]` per acceptance case; `$store` is an
/// expression of a future that yields a fresh `SessionStore`.
#[macro_export]
macro_rules! acceptance_suite {
    ($store:expr) => {
        $crate::acceptance_suite!(@cases $store;
            new_empty_session_is_never_stored,
            typed_values_round_trip,
            only_changed_fields_are_written,
            removed_fields_are_deleted,
            idle_timeout_expires_and_slides,
            per_session_idle_timeout_override,
            absolute_timeout_is_not_extended_by_activity,
            auto_renew_rotates_id_and_keeps_data,
            disable_auto_renew_keeps_id,
            regenerate_keeps_data_and_deletes_old_id,
            reset_clears_data_and_clears_client,
            destroy_clears_data_and_deletes,
            forged_id_is_never_adopted,
            malformed_ids_never_reach_the_store,
            cookie_extractor_writes_cookie,
            header_extractor_writes_header,
            chain_writes_cookie_and_header,
            read_only_sources_are_never_promoted,
            form_and_param_extractors,
            custom_extractor,
            schema_evolution,
            too_large_session_is_refused,
            store_pattern,
            concurrent_access_from_many_tasks,
            concurrent_sessions,
            store_failure_is_an_error_and_loses_nothing,
            destroyed_session_is_not_revived_by_a_stale_handle,
            logins_of_one_user_are_listed,
            revoke_one_others_and_all,
            the_cap_evicts_the_least_recently_used,
            rotation_keeps_one_entry,
            expired_sessions_leave_the_index,
            revoke_all_wins_over_requests_in_flight,
            changing_or_clearing_the_principal_moves_the_entry,
            anonymous_sessions_never_touch_the_index,
        );
    };
    (@cases $store:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store = $store.await;
            $crate::acceptance::$case(::std::sync::Arc::new(store)).await;
        }
    )*};
}

/// A manager over `store` with `clock` and `config`.
pub fn manager(
    store: Arc<dyn DynSessionStore>,
    clock: &ManualClock,
    config: Config,
) -> SessionManager<Profile> {
    SessionManager::builder(store)
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid config")
}

fn default_manager(store: Arc<dyn DynSessionStore>) -> (SessionManager<Profile>, ManualClock) {
    let clock = ManualClock::new(T0);
    (manager(store, &clock, Config::default()), clock)
}

/// Runs one request: load (reading the id from `req`), let `handler` work, finish.
pub async fn request<T: sessionkit::SessionData>(
    manager: &SessionManager<T>,
    req: &TestRequest,
    handler: impl FnOnce(&Session<T>),
) -> Result<(Session<T>, ResponseUpdate), SessionError> {
    let pending = manager.begin();
    let session = pending.load(req).await?;
    handler(&session);
    let update = pending.finish(false).await?;
    Ok((session, update))
}

/// The cookie value a `Set-Cookie` header carries.
#[must_use]
pub fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(_, v)| v)
}

fn sent_id(update: &ResponseUpdate) -> String {
    cookie_value(update.set_cookie.as_deref().expect("a Set-Cookie")).to_owned()
}

/// A session with some data, saved; returns its id.
async fn saved_session(manager: &SessionManager<Profile>) -> String {
    let (_, update) = request(manager, &TestRequest::new(), |s| {
        s.set(NAME, "ada".into());
        s.set(VISITS, 1);
    })
    .await
    .expect("request");
    sent_id(&update)
}

fn with_cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

pub async fn new_empty_session_is_never_stored(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let (m, _) = default_manager(Arc::new(rec.clone()));
    // Touching a new session without writing: nothing stored, no cookie.
    let (session, update) = request(&m, &TestRequest::new(), |s| {
        assert!(s.fresh());
        assert_eq!(s.get(VISITS), 0);
    })
    .await
    .unwrap();
    assert!(
        update.is_empty(),
        "no cookie for an empty session: {update:?}"
    );
    assert!(rec.take_calls().is_empty(), "no store call at all");
    assert!(m.load_by_id(session.id().as_str()).await.unwrap().is_none());
    rec.take_calls();
    // Not touching it at all costs nothing either.
    let pending = m.begin();
    pending.capture(&TestRequest::new());
    assert!(pending.finish(false).await.unwrap().is_empty());
    assert!(rec.take_calls().is_empty());
}

pub async fn typed_values_round_trip(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let (first, update) = request(&m, &TestRequest::new(), |s| {
        s.set(NAME, "ada".into());
        s.update(TAGS, |t| t.push("admin".into()));
        s.set(USER_ID, Some(7));
    })
    .await
    .unwrap();
    let id = sent_id(&update);
    assert_eq!(id, first.id().as_str());
    let (again, update) = request(&m, &with_cookie(&id), |s| {
        assert!(!s.fresh());
        assert_eq!(s.get(NAME), "ada");
        assert_eq!(s.get(TAGS), ["admin"]);
        assert_eq!(s.get(USER_ID), Some(7));
        assert_eq!(s.get(VISITS), 0);
        let mut keys = s.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["name", "tags", "user_id"]);
    })
    .await
    .unwrap();
    assert_eq!(again.id().as_str(), id);
    assert!(
        update.is_empty(),
        "an unchanged id is not re-sent: {update:?}"
    );
    assert_eq!(again.snapshot().name, "ada");
}

pub async fn only_changed_fields_are_written(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let (m, _) = default_manager(Arc::new(rec.clone()));
    let id = saved_session(&m).await;
    rec.take_calls();

    // Read only: one load (which refreshes the TTL), no write.
    request(&m, &with_cookie(&id), |s| {
        let _ = s.get(NAME);
    })
    .await
    .unwrap();
    assert_eq!(rec.take_calls(), [Call::Load(id.clone())]);

    // Setting a field to its stored value writes nothing.
    request(&m, &with_cookie(&id), |s| s.set(NAME, "ada".into()))
        .await
        .unwrap();
    assert_eq!(rec.take_calls(), [Call::Load(id.clone())]);

    // Changing one field writes exactly that field, as a partial update.
    request(&m, &with_cookie(&id), |s| s.update(VISITS, |v| *v += 1))
        .await
        .unwrap();
    let calls = rec.take_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let Some(update) = calls[1].as_write() else {
        panic!("expected a write: {calls:?}")
    };
    assert_eq!(update.id.as_str(), id);
    assert_eq!(update.kind, WriteKind::Update);
    assert_eq!(
        update.set.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["visits"]
    );
    assert!(update.remove.is_empty());

    // modify() marks everything, but only fields whose encoding changed are written.
    request(&m, &with_cookie(&id), |s| {
        s.modify(|p| p.tags.push("x".into()))
    })
    .await
    .unwrap();
    let calls = rec.take_calls();
    let Some(update) = calls[1].as_write() else {
        panic!("expected a write: {calls:?}")
    };
    assert_eq!(
        update.set.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["tags"]
    );
}

pub async fn removed_fields_are_deleted(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let id = saved_session(&m).await;
    request(&m, &with_cookie(&id), |s| {
        assert_eq!(s.take(NAME), "ada");
        assert_eq!(s.get(NAME), "");
    })
    .await
    .unwrap();
    let s = m.load_by_id(&id).await.unwrap().unwrap();
    assert_eq!(s.keys(), ["visits"]);
    assert_eq!(s.get(NAME), "");
    assert!(s.remove_key("visits"));
    assert!(!s.remove_key("nope"));
    s.save().await.unwrap();
    // A session left with no data is deleted.
    assert!(m.load_by_id(&id).await.unwrap().is_none());
}

pub async fn idle_timeout_expires_and_slides(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(30 * MIN)
        .disable_auto_renew(true)
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let id = saved_session(&m).await;
    // Requests every 20 minutes keep it alive well past 30 minutes.
    for _ in 0..4 {
        clock.advance(20 * MIN);
        let (s, _) = request(&m, &with_cookie(&id), |_| {}).await.unwrap();
        assert!(!s.fresh(), "alive");
        assert_eq!(s.get(VISITS), 1);
    }
    clock.advance(30 * MIN);
    assert!(m.load_by_id(&id).await.unwrap().is_none(), "expired");
    // Through a request: the expired id is not adopted.
    let (s, _) = request(&m, &with_cookie(&id), |_| {}).await.unwrap();
    assert!(s.fresh());
    assert_ne!(s.id().as_str(), id);
}

pub async fn per_session_idle_timeout_override(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(30 * MIN)
        .disable_auto_renew(true)
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let (_, update) = request(&m, &TestRequest::new(), |s| {
        s.set(NAME, "remember me".into());
        s.set_idle_timeout(24 * 60 * MIN);
    })
    .await
    .unwrap();
    let id = sent_id(&update);
    clock.advance(10 * 60 * MIN);
    let s = m.load_by_id(&id).await.unwrap().expect("still alive");
    assert_eq!(s.idle_timeout(), 24 * 60 * MIN);
    // Changing only the timeout of a stored session is a metadata touch.
    s.set_idle_timeout(48 * 60 * MIN);
    s.save().await.unwrap();
    clock.advance(47 * 60 * MIN);
    let s = m
        .load_by_id(&id)
        .await
        .unwrap()
        .expect("touched timeout applies");
    s.set_idle_timeout(24 * 60 * MIN);
    s.save().await.unwrap();
    clock.advance(25 * 60 * MIN);
    assert!(m.load_by_id(&id).await.unwrap().is_none());
}

pub async fn absolute_timeout_is_not_extended_by_activity(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(30 * MIN)
        .absolute_timeout(60 * MIN)
        .auto_renew_after(15 * MIN)
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let mut id = saved_session(&m).await;
    // Active every 20 minutes, rotated by auto-renew and regenerated once:
    // the session still ends 60 minutes after creation.
    for step in 0..2 {
        clock.advance(20 * MIN);
        let (s, update) = request(&m, &with_cookie(&id), |s| {
            if step == 1 {
                s.regenerate().unwrap();
            }
        })
        .await
        .unwrap();
        assert_eq!(s.get(NAME), "ada");
        id = sent_id(&update);
    }
    clock.advance(19 * MIN);
    assert!(m.load_by_id(&id).await.unwrap().is_some(), "59 minutes");
    clock.advance(MIN);
    assert!(m.load_by_id(&id).await.unwrap().is_none(), "60 minutes");
}

pub async fn auto_renew_rotates_id_and_keeps_data(store: Arc<dyn DynSessionStore>) {
    let (m, clock) = default_manager(store);
    let id = saved_session(&m).await;
    clock.advance(29 * MIN);
    let (_, update) = request(&m, &with_cookie(&id), |_| {}).await.unwrap();
    assert_eq!(
        sent_id(&update),
        id,
        "not yet due: the same id, re-sent because the idle deadline was refreshed"
    );
    clock.advance(2 * MIN);
    let (s, update) = request(&m, &with_cookie(&id), |s| assert_eq!(s.get(NAME), "ada"))
        .await
        .unwrap();
    let new_id = sent_id(&update);
    assert_ne!(new_id, id);
    assert_eq!(s.id().as_str(), new_id);
    let renewed = m.load_by_id(&new_id).await.unwrap().expect("new id");
    assert_eq!(renewed.get(NAME), "ada");
    assert_eq!(renewed.get(VISITS), 1);
    // During the grace period the old id still reaches the session, under its new id…
    let via_old = m
        .load_by_id(&id)
        .await
        .unwrap()
        .expect("within the grace period");
    assert_eq!(via_old.id().as_str(), new_id);
    // …and after it, nothing.
    clock.advance(Duration::from_secs(5));
    assert!(m.load_by_id(&id).await.unwrap().is_none(), "old id gone");
    assert!(m.load_by_id(&new_id).await.unwrap().is_some());
}

pub async fn disable_auto_renew_keeps_id(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder().disable_auto_renew(true).build().unwrap();
    let m = manager(store, &clock, config);
    let id = saved_session(&m).await;
    clock.advance(29 * MIN);
    request(&m, &with_cookie(&id), |_| {}).await.unwrap();
    clock.advance(29 * MIN);
    let (s, _) = request(&m, &with_cookie(&id), |_| {}).await.unwrap();
    assert_eq!(s.id().as_str(), id);
}

pub async fn regenerate_keeps_data_and_deletes_old_id(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let id = saved_session(&m).await;
    let (s, update) = request(&m, &with_cookie(&id), |s| {
        s.regenerate().unwrap();
        s.set(USER_ID, Some(1));
    })
    .await
    .unwrap();
    let new_id = sent_id(&update);
    assert_ne!(new_id, id);
    assert_eq!(s.id().as_str(), new_id);
    assert!(m.load_by_id(&id).await.unwrap().is_none(), "old id deleted");
    let s = m.load_by_id(&new_id).await.unwrap().unwrap();
    assert_eq!((s.get(NAME), s.get(USER_ID)), ("ada".to_owned(), Some(1)));
    // Replaying the old id yields a fresh session, never the data.
    let (replay, _) = request(&m, &with_cookie(&id), |_| {}).await.unwrap();
    assert!(replay.fresh());
    assert_eq!(replay.get(NAME), "");
}

pub async fn reset_clears_data_and_clears_client(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let id = saved_session(&m).await;
    let (s, update) = request(&m, &with_cookie(&id), |s| s.reset().unwrap())
        .await
        .unwrap();
    assert_ne!(s.id().as_str(), id);
    assert_eq!(s.get(NAME), "");
    let removal = update.set_cookie.expect("removal cookie");
    assert!(removal.starts_with("session_id=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(removal.contains("Path=/"), "{removal}");
    assert!(m.load_by_id(&id).await.unwrap().is_none());
    assert!(m.load_by_id(s.id().as_str()).await.unwrap().is_none());
    // Reset, then new data: saved under the new id and sent.
    let id = saved_session(&m).await;
    let (s, update) = request(&m, &with_cookie(&id), |s| {
        s.reset().unwrap();
        s.set(NAME, "guest".into());
    })
    .await
    .unwrap();
    assert_eq!(sent_id(&update), s.id().as_str());
    assert_ne!(s.id().as_str(), id);
    assert!(m.load_by_id(&id).await.unwrap().is_none());
}

pub async fn destroy_clears_data_and_deletes(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let id = saved_session(&m).await;
    let (s, update) = request(&m, &with_cookie(&id), Session::destroy)
        .await
        .unwrap();
    assert_eq!(s.id().as_str(), id, "destroy keeps the id");
    assert_eq!(s.get(NAME), "");
    assert!(update.set_cookie.expect("removal").contains("Max-Age=0"));
    assert!(m.load_by_id(&id).await.unwrap().is_none());
}

pub async fn forged_id_is_never_adopted(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let forged = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    let (s, update) = request(&m, &with_cookie(forged), |s| s.set(NAME, "victim".into()))
        .await
        .unwrap();
    let issued = sent_id(&update);
    assert_ne!(issued, forged);
    assert_eq!(s.id().as_str(), issued);
    assert!(m.load_by_id(forged).await.unwrap().is_none());
}

pub async fn malformed_ids_never_reach_the_store(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let (m, _) = default_manager(Arc::new(rec.clone()));
    let long = "a".repeat(1024);
    for bad in [
        "{\"$ne\":null}aaaaaaaaaa",
        "../../../../etc/passwd",
        "aaaaaaaaaaaaaaaa\r\nSet-Cookie: x=y",
        "ümlautümlautümlaut",
        "short",
        long.as_str(),
    ] {
        let req = TestRequest::new().header("cookie", &format!("session_id={bad}"));
        let (s, update) = request(&m, &req, |s| s.set(NAME, "x".into()))
            .await
            .unwrap();
        assert!(s.fresh());
        assert_ne!(s.id().as_str(), bad);
        assert_eq!(sent_id(&update), s.id().as_str());
        for call in rec.take_calls() {
            let Some(write) = call.as_write() else {
                panic!("only the new session's write may reach the store: {call:?}")
            };
            assert_eq!(write.id.as_str(), s.id().as_str());
        }
    }
    assert!(matches!(
        m.load_by_id("{bad}").await,
        Err(SessionError::InvalidId(_))
    ));
    assert!(rec.take_calls().is_empty());
}

pub async fn cookie_extractor_writes_cookie(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .key_lookup("cookie:sid")
        .cookie_http_only(true)
        .cookie_secure(true)
        .cookie_domain("example.com")
        .cookie_path("/app")
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    let cookie = update.set_cookie.clone().unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/app",
        "Domain=example.com",
        "Max-Age=7200",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(cookie.starts_with("sid="));
    assert!(update.header.is_none());
    let id = sent_id(&update);
    let (s, _) = request(&m, &TestRequest::new().cookie("sid", &id), |_| {})
        .await
        .unwrap();
    assert_eq!(s.get(VISITS), 1);

    // Session-only cookies carry no Max-Age.
    let config = Config::builder().cookie_session_only(true).build().unwrap();
    let m = manager(m.store().clone(), &clock, config);
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    assert!(!update.set_cookie.unwrap().contains("Max-Age"));
}

pub async fn header_extractor_writes_header(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .key_lookup("header:X-Session-ID")
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    assert!(update.set_cookie.is_none());
    let (name, id) = update.header.unwrap();
    assert_eq!(name, "X-Session-ID");
    let req = TestRequest::new().header("x-session-id", &id);
    let (s, update) = request(&m, &req, |s| s.destroy()).await.unwrap();
    assert_eq!(s.id().as_str(), id);
    assert_eq!(update.header, Some(("X-Session-ID".into(), String::new())));
}

pub async fn chain_writes_cookie_and_header(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .key_lookup("cookie:session_id,header:X-Session-ID,query:session_id")
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    let id = sent_id(&update);
    assert_eq!(update.header, Some(("X-Session-ID".into(), id.clone())));
    // The header is used when the cookie is absent.
    let req = TestRequest::new().header("X-Session-ID", &id);
    let (s, _) = request(&m, &req, |_| {}).await.unwrap();
    assert_eq!(s.get(VISITS), 1);
    // The cookie wins over the header.
    let other = saved_session(&m).await;
    let req = TestRequest::new()
        .cookie("session_id", &other)
        .header("X-Session-ID", &id);
    let (s, _) = request(&m, &req, |_| {}).await.unwrap();
    assert_eq!(s.id().as_str(), other);
}

pub async fn read_only_sources_are_never_promoted(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    // Cookie + query: an id that came by query is not written into the cookie.
    let config = Config::builder()
        .key_lookup("cookie:session_id,query:sid")
        .build()
        .unwrap();
    let m = manager(store.clone(), &clock, config);
    let id = saved_session(&m).await;
    let req = TestRequest::new().query(&format!("sid={id}"));
    let (s, update) = request(&m, &req, |s| s.set(VISITS, 5)).await.unwrap();
    assert_eq!(s.id().as_str(), id);
    assert!(update.is_empty(), "query id promoted: {update:?}");
    // A new, server-made id is sent through the writable source.
    let (s, update) = request(&m, &req, |s| s.regenerate().unwrap())
        .await
        .unwrap();
    assert_eq!(sent_id(&update), s.id().as_str());

    // Query + form only: read-only, nothing is ever written back.
    let config = Config::builder()
        .key_lookup("query:sid,form:sid")
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let (s, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    assert!(update.is_empty());
    let req = TestRequest::new().query(&format!("sid={}", s.id()));
    let (again, update) = request(&m, &req, |_| {}).await.unwrap();
    assert_eq!(again.get(VISITS), 1);
    assert!(update.is_empty());
}

pub async fn form_and_param_extractors(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let m = manager(store.clone(), &clock, Config::default());
    let id = saved_session(&m).await;
    for (lookup, req) in [
        (
            "form:sid",
            TestRequest::new().form(&format!("a=1&sid={id}")),
        ),
        ("param:sid", TestRequest::new().param("sid", &id)),
    ] {
        let config = Config::builder().key_lookup(lookup).build().unwrap();
        let m = manager(store.clone(), &clock, config);
        let (s, update) = request(&m, &req, |_| {}).await.unwrap();
        assert_eq!(s.get(NAME), "ada", "{lookup}");
        assert!(update.is_empty());
    }
}

pub async fn custom_extractor(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let bearer = Extractor::custom("Authorization", SourceKind::Header, |req| {
        req.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::to_owned)
    });
    let m = SessionManager::<Profile>::builder(store)
        .extractor(bearer)
        .clock(clock)
        .build()
        .unwrap();
    let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 3))
        .await
        .unwrap();
    let (name, id) = update.header.unwrap();
    assert_eq!(name, "Authorization");
    let req = TestRequest::new().header("Authorization", &format!("Bearer {id}"));
    let (s, _) = request(&m, &req, |_| {}).await.unwrap();
    assert_eq!(s.get(VISITS), 3);
}

pub async fn schema_evolution(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let v1 = manager(store.clone(), &clock, Config::default());
    let s = v1.create().unwrap();
    s.set(NAME, "ada".into());
    s.set(VISITS, 41);
    s.set(TAGS, vec!["gone".into()]);
    s.set(USER_ID, Some(9));
    s.save().await.unwrap();
    let id = s.id();

    let v2 = SessionManager::<ProfileV2>::builder(store)
        .clock(clock)
        .build()
        .unwrap();
    // `visits` no longer decodes (u32 → String): default, no error;
    // `tags` is ignored; `theme` is new: default.
    let s = v2.load_by_id(id.as_str()).await.unwrap().expect("loads");
    let data = s.snapshot();
    assert_eq!(data.name, "ada");
    assert_eq!(data.user_id, Some(9));
    assert_eq!(data.visits, "");
    assert_eq!(data.theme, "");
    s.set(V2_VISITS, "many".into());
    s.save().await.unwrap();
    let s = v2.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(s.get(V2_VISITS), "many");
}

pub async fn too_large_session_is_refused(store: Arc<dyn DynSessionStore>) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .max_session_bytes(256_usize)
        .build()
        .unwrap();
    let m = manager(store, &clock, config);
    let id = saved_session(&m).await;
    let s = m.load_by_id(&id).await.unwrap().unwrap();
    s.set(NAME, "x".repeat(300));
    match s.save().await {
        Err(SessionError::TooLarge { size, limit }) => {
            assert!(size > 300);
            assert_eq!(limit, 256);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let stored = m.load_by_id(&id).await.unwrap().unwrap();
    assert_eq!(stored.get(NAME), "ada", "nothing was written");
    // A new session over the limit is not stored either.
    let pending = m.begin();
    let s = pending.load(&TestRequest::new()).await.unwrap();
    s.set(TAGS, vec!["y".repeat(400)]);
    assert!(matches!(
        pending.finish(false).await,
        Err(SessionError::TooLarge { .. })
    ));
    assert!(m.load_by_id(s.id().as_str()).await.unwrap().is_none());
}

pub async fn store_pattern(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let s = m.create().unwrap();
    s.set(NAME, "job".into());
    s.save().await.unwrap();
    let id = s.id().to_string();
    // A background task changes it by id.
    let m2 = m.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        let s = m2.load_by_id(&id2).await.unwrap().unwrap();
        s.update(VISITS, |v| *v += 10);
        s.save().await.unwrap();
    })
    .await
    .unwrap();
    let s = m.load_by_id(&id).await.unwrap().unwrap();
    assert_eq!((s.get(NAME), s.get(VISITS)), ("job".to_owned(), 10));
    // From a session, its manager reaches other sessions (Fiber's sess.Store()).
    let other = s.manager().create().unwrap();
    other.set(NAME, "other".into());
    other.save().await.unwrap();
    assert!(m.load_by_id(other.id().as_str()).await.unwrap().is_some());
    m.delete_by_id(&id).await.unwrap();
    assert!(m.load_by_id(&id).await.unwrap().is_none());
    // Deleting an absent session is fine.
    m.delete_by_id(&id).await.unwrap();
}

pub async fn concurrent_access_from_many_tasks(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let s = m.create().unwrap();
    s.set(NAME, "shared".into());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.update(VISITS, |v| *v += 1);
                s.update(TAGS, move |t| t.push(format!("t{i}")));
                s.save().await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    s.save().await.unwrap();
    let loaded = m.load_by_id(s.id().as_str()).await.unwrap().unwrap();
    assert_eq!(loaded.get(VISITS), 64);
    assert_eq!(loaded.get(TAGS).len(), 64);
}

pub async fn concurrent_sessions(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let (_, update) = request(&m, &TestRequest::new(), move |s| s.set(VISITS, i + 1))
                    .await
                    .unwrap();
                let id = sent_id(&update);
                let (s, _) = request(&m, &with_cookie(&id), |s| s.update(VISITS, |v| *v += 1))
                    .await
                    .unwrap();
                (id, s.get(VISITS), i)
            })
        })
        .collect();
    for t in tasks {
        let (id, seen, i) = t.await.unwrap();
        assert_eq!(seen, i + 2);
        assert_eq!(m.load_by_id(&id).await.unwrap().unwrap().get(VISITS), i + 2);
    }
}

pub async fn store_failure_is_an_error_and_loses_nothing(store: Arc<dyn DynSessionStore>) {
    let rec = RecordingStore::new(store);
    let (m, _) = default_manager(Arc::new(rec.clone()));
    let id = saved_session(&m).await;
    let pending = m.begin();
    let s = pending.load(&with_cookie(&id)).await.unwrap();
    s.set(NAME, "changed".into());
    rec.set_failing(true);
    assert!(matches!(
        pending.finish(false).await,
        Err(SessionError::Store(_))
    ));
    rec.set_failing(false);
    // The change is still pending and lands on the next commit.
    s.save().await.unwrap();
    assert_eq!(
        m.load_by_id(&id).await.unwrap().unwrap().get(NAME),
        "changed"
    );
    // A load failure is an error too, never a silently fresh session.
    rec.set_failing(true);
    let pending = m.begin();
    assert!(matches!(
        pending.load(&with_cookie(&id)).await,
        Err(SessionError::Store(_))
    ));
}

pub async fn destroyed_session_is_not_revived_by_a_stale_handle(store: Arc<dyn DynSessionStore>) {
    let (m, _) = default_manager(store);
    let id = saved_session(&m).await;
    // Two requests of one session: one logs out, the other saves a change later.
    let stale = m.load_by_id(&id).await.unwrap().unwrap();
    let logout = m.load_by_id(&id).await.unwrap().unwrap();
    logout.destroy();
    logout.save().await.unwrap();
    stale.set(VISITS, 99);
    stale.save().await.unwrap();
    assert!(
        m.load_by_id(&id).await.unwrap().is_none(),
        "a partial save must not bring back a destroyed session"
    );
}

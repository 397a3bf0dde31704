//! The Redis store's opt-in read cache (`RedisStoreBuilder::read_cache`)
//! against `redis-server`s started by the tests: the acceptance suite and
//! the store contract with the cache on, then what the cache promises: a
//! repeated load sends nothing; another instance's write, logout and
//! revocation are seen once Redis' invalidation arrives; a stale cached
//! load costs a conflict and a replay, never an update; a lost tracking
//! connection flushes the cache and bypasses it until it is back; at most
//! `max_sessions` are held; nothing is served past its expiry.
//!
//! Every wait is a poll of the cache's counters with a bounded deadline.

mod redis_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_common::{change, cookie, create, now, steady_manager};
use sessionkit::id::SessionId;
use sessionkit::store::{
    DynSessionStore, Loaded, PrincipalIndex, PrincipalWrite, SessionStore, Take, Written,
};
use sessionkit::{ReadCacheStats, RedisConfigError, RedisStore};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::redis_server::{lines, read_cache_ready, unique_prefix, RedisServer};
use sessionkit_tests::resp_proxy::RespProxy;
use sessionkit_tests::store_contract::{principal, rotate, sid, with};
use sessionkit_tests::support::{Profile, NAME, VISITS};

/// How long any wait for the cache may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn cached(url: &str, prefix: &str, max_sessions: usize) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .read_cache(max_sessions)
        .build()
        .expect("store")
}

fn stats(store: &RedisStore) -> ReadCacheStats {
    store.read_cache_stats().expect("the read cache is on")
}

/// Polls the cache's counters until `done` holds (at most [`DEADLINE`]).
async fn until(store: &RedisStore, why: &str, done: impl Fn(&ReadCacheStats) -> bool) {
    let start = Instant::now();
    loop {
        let now = stats(store);
        if done(&now) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "{why}: still {now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A first load starts the tracking connection; waits until it is up.
async fn coherent(store: &RedisStore) {
    read_cache_ready(store).await;
}

/// A cached store on the shared server, tracking already on.
async fn ready(test: &str) -> RedisStore {
    let store = cached(&RedisServer::shared().url(), &unique_prefix(test), 1_000);
    coherent(&store).await;
    store
}

mod acceptance {
    sessionkit_tests::acceptance_suite!(super::ready("cache-acceptance"));
}

mod contract {
    sessionkit_tests::all_store_contract_cases!(super::ready("cache-contract"));
}

fn field(loaded: &Loaded, name: &str) -> Option<Vec<u8>> {
    match loaded {
        Loaded::Session(record) => record.fields.get(name).map(|v| v.to_vec()),
        other => panic!("expected a session, got {other:?}"),
    }
}

async fn load(store: &RedisStore, id: &SessionId) -> Loaded {
    store.load(id, now()).await.expect("load")
}

/// Loads `id` until it is served from memory.
async fn cache_it(store: &RedisStore, id: &SessionId) {
    load(store, id).await;
    let hits = stats(store).hits;
    load(store, id).await;
    assert_eq!(stats(store).hits, hits + 1, "the second load is a hit");
}

/// Two instances on one server: A with the read cache (tracking up), B
/// without; and the time their writes are made at.
async fn two_instances(server: &RedisServer) -> (RedisStore, RedisStore, u64) {
    let a = cached(&server.url(), "sessionkit:", 100);
    let b = RedisStore::from_url(server.url()).expect("store");
    coherent(&a).await;
    (a, b, now())
}

/// A session `name` created by B (`n` = 1) and served from A's cache.
async fn cached_by_a(a: &RedisStore, b: &RedisStore, name: &str, t: u64) -> SessionId {
    let id = sid(name);
    b.write(&create(&id, t, &[("n", b"1")]))
        .await
        .expect("write");
    cache_it(a, &id).await;
    id
}

#[test]
fn the_cache_is_off_by_default_and_needs_one_node() {
    let plain = RedisStore::from_url("redis://127.0.0.1:6390").expect("store");
    assert!(plain.read_cache_stats().is_none());
    assert!(matches!(
        RedisStore::builder("redis://127.0.0.1:6390")
            .read_cache(0)
            .build(),
        Err(RedisConfigError::Setting(_))
    ));
    let error = RedisStore::cluster_builder(["redis://127.0.0.1:7000"])
        .read_cache(10)
        .build()
        .expect_err("no cache on a cluster");
    assert!(matches!(
        error,
        RedisConfigError::ReadCacheNeedsOneNode {
            topology: "Redis Cluster"
        }
    ));
    assert!(
        error.to_string().contains("remove `.read_cache(..)`"),
        "{error}"
    );
}

/// Without the cache no connection is tracked: the store is what it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_nothing_is_tracked() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(server.url()).expect("store");
    let id = sid("untracked");
    store
        .write(&create(&id, now(), &[("n", b"1")]))
        .await
        .expect("write");
    load(&store, &id).await;
    let clients = server.cli(&["CLIENT", "LIST"]);
    assert!(
        lines(&clients).iter().all(|c| !c.contains("resp=3")),
        "{clients}"
    );
}

/// A repeated load is answered from memory: Redis sees no command for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_load_sends_nothing_to_redis() {
    let server = RedisServer::start();
    let store = cached(&server.url(), "sessionkit:", 100);
    let manager = steady_manager::<Profile>(store.clone());
    coherent(&store).await;
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    let sid = s.id().to_string();
    request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), "ada"))
        .await
        .expect("the miss");

    server.reset_stats();
    let before = stats(&store);
    let n = 40;
    for _ in 0..n {
        request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), "ada"))
            .await
            .expect("request");
    }
    let mut calls = server.all_calls();
    // The tracking connection's heartbeat is a PING a second.
    calls.retain(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat" | "ping"));
    assert_eq!(calls, [], "repeated loads sent commands");
    let after = stats(&store);
    assert_eq!(after.hits - before.hits, n);
    assert_eq!(after.misses, before.misses);
}

/// Instance A caches a session; instance B writes to it, logs it out, or
/// revokes it; A's next load after the invalidation sees the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_s_changes_are_seen_once_invalidated() {
    let server = RedisServer::start();
    let (a, b, t) = two_instances(&server).await;

    // A write.
    let id = cached_by_a(&a, &b, "written", t).await;
    let seen = stats(&a).invalidations;
    assert_eq!(
        b.write(&change(&id, t, &[("n", b"2")], &[], &[]))
            .await
            .expect("write"),
        Written::Done
    );
    until(&a, "the write's invalidation", |s| s.invalidations > seen).await;
    assert_eq!(field(&load(&a, &id).await, "n").as_deref(), Some(&b"2"[..]));

    // A logout (delete).
    cache_it(&a, &id).await;
    let seen = stats(&a).invalidations;
    b.delete(&id).await.expect("delete");
    until(&a, "the delete's invalidation", |s| s.invalidations > seen).await;
    assert_eq!(load(&a, &id).await, Loaded::Absent);

    // A revocation of a user's sessions.
    let user = principal("cached");
    let id = sid("revoked");
    let login = with(
        create(&id, t, &[("n", b"1")]),
        PrincipalWrite::Join(user.clone()),
    );
    assert_eq!(b.write(&login).await.expect("login"), Written::Done);
    cache_it(&a, &id).await;
    let seen = stats(&a).invalidations;
    assert_eq!(
        b.revoke_principal_sessions(&user, Take::All, t)
            .await
            .expect("revoke"),
        1
    );
    until(&a, "the revocation's invalidation", |s| {
        s.invalidations > seen
    })
    .await;
    assert_eq!(load(&a, &id).await, Loaded::Absent);
}

/// A store whose tracking connection goes through `proxy` (marked, so
/// [`RespProxy::pause_marked`] holds what Redis sends it), with a short
/// command timeout so a held command ends soon.
async fn behind(proxy: &RespProxy, command_timeout: Duration) -> RedisStore {
    proxy.mark(|command| {
        command.len() >= 2
            && command[0].eq_ignore_ascii_case(b"CLIENT")
            && command[1].eq_ignore_ascii_case(b"TRACKING")
    });
    let store = RedisStore::builder(proxy.url())
        .read_cache(100)
        .command_timeout(command_timeout)
        .build()
        .expect("store");
    coherent(&store).await;
    store
}

/// This instance's own write is seen by its next load with no help from
/// Redis: the invalidation is held back, and the load still answers the
/// new value (it is a miss; the held read then fails over to the pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_write_is_seen_without_waiting_for_the_invalidation() {
    let server = RedisServer::start();
    let proxy = RespProxy::start(server.port());
    let store = behind(&proxy, Duration::from_millis(200)).await;
    let (t, id) = (now(), sid("own"));
    store
        .write(&create(&id, t, &[("n", b"1")]))
        .await
        .expect("write");
    cache_it(&store, &id).await;
    proxy.pause_marked();
    store
        .write(&change(&id, t, &[("n", b"2")], &[], &[]))
        .await
        .expect("write");
    assert_eq!(
        field(&load(&store, &id).await, "n").as_deref(),
        Some(&b"2"[..])
    );
    proxy.resume_marked();
}

/// This instance's delete of an old id also deletes the session it was
/// renewed to (the script follows the tombstone), which this instance
/// cached under the new id: the delete returns only once Redis'
/// invalidations have been applied, or, when they are held back, once it
/// has turned the cache off; either way the new id is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_delete_through_a_tombstone_is_seen_at_once() {
    let server = RedisServer::start();
    let proxy = RespProxy::start(server.port());
    let store = behind(&proxy, Duration::from_millis(200)).await;
    let t = now();
    let (old, new) = (sid("old"), sid("new"));
    store
        .write(&create(&old, t, &[("n", b"1")]))
        .await
        .expect("write");
    let rotation = rotate(&old, &new, t, 60_000, &[("n", Some(b"1"))], &[]);
    assert_eq!(store.write(&rotation).await.expect("rotate"), Written::Done);
    cache_it(&store, &new).await;
    // Without the hold, the same holds, and the cache stays on.
    store.delete(&old).await.expect("delete");
    assert_eq!(load(&store, &new).await, Loaded::Absent);
    assert!(stats(&store).coherent);

    let (old, new) = (sid("old2"), sid("new2"));
    store
        .write(&create(&old, t, &[("n", b"1")]))
        .await
        .expect("write");
    let rotation = rotate(&old, &new, t, 60_000, &[("n", Some(b"1"))], &[]);
    assert_eq!(store.write(&rotation).await.expect("rotate"), Written::Done);
    cache_it(&store, &new).await;
    proxy.pause_marked();
    store.delete(&old).await.expect("delete");
    assert_eq!(load(&store, &new).await, Loaded::Absent);
    proxy.resume_marked();
}

/// With A's invalidations held back (a proxy pauses what Redis sends on
/// A's tracking connection), A serves a stale load: its increment
/// conflicts, is replayed on the fresh value, and B's increment is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_load_costs_a_conflict_and_a_replay_never_an_update() {
    let server = RedisServer::start();
    let proxy = RespProxy::start(server.port());
    // A long command timeout: the held heartbeat must not end the test's
    // pause by turning A's cache off.
    let a = behind(&proxy, DEADLINE).await;
    let b = RedisStore::from_url(server.url()).expect("store");
    let (on_a, on_b) = (
        steady_manager::<Profile>(a.clone()),
        steady_manager::<Profile>(b),
    );
    let s = on_b.create().expect("id");
    s.set(VISITS, 1);
    s.save().await.expect("save");
    let sid = s.id().to_string();
    let id = SessionId::parse(&sid).expect("id");
    cache_it(&a, &id).await;

    proxy.pause_marked();
    request(&on_b, &cookie(&sid), |s| s.update(VISITS, |v| *v += 1))
        .await
        .expect("B's increment");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    request(&on_a, &cookie(&sid), move |s| {
        let log = Arc::clone(&log);
        s.update(VISITS, move |v| {
            log.lock().expect("log").push(*v);
            *v += 1;
        });
    })
    .await
    .expect("A's increment");
    assert_eq!(
        *seen.lock().expect("log"),
        [1, 2],
        "A ran on its stale cached load (1), conflicted, and replayed on B's value (2)"
    );
    proxy.resume_marked();
    request(&on_b, &cookie(&sid), |s| assert_eq!(s.get(VISITS), 3))
        .await
        .expect("both increments kept");
    until(&a, "the held invalidation", |s| s.invalidations > 0).await;
    request(&on_a, &cookie(&sid), |s| assert_eq!(s.get(VISITS), 3))
        .await
        .expect("A sees it");
}

/// `CLIENT KILL` of the tracking connection: the cache is flushed, loads go
/// to Redis (and see a change made meanwhile by another client) until the
/// store has reconnected; then they are cached again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tracking_connection_flushes_and_bypasses_until_it_is_back() {
    let server = RedisServer::start();
    let (a, b, t) = two_instances(&server).await;
    let id = cached_by_a(&a, &b, "dropped", t).await;
    assert_eq!(stats(&a).entries, 1);

    let tracking = tracking_client(&server);
    assert_eq!(server.cli(&["CLIENT", "KILL", "ID", &tracking]), "1");
    until(&a, "the flush", |s| s.flushes == 1).await;
    let now_stats = stats(&a);
    assert_eq!(now_stats.entries, 0, "flushed");
    b.write(&change(&id, t, &[("n", b"2")], &[], &[]))
        .await
        .expect("a change made while A has no tracking");
    assert_eq!(
        field(&load(&a, &id).await, "n").as_deref(),
        Some(&b"2"[..]),
        "the load went to Redis"
    );

    until(&a, "the reconnection", |s| s.coherent).await;
    cache_it(&a, &id).await;
    assert_eq!(field(&load(&a, &id).await, "n").as_deref(), Some(&b"2"[..]));
    assert_ne!(
        tracking_client(&server),
        tracking,
        "a new tracking connection"
    );
}

/// The id of the one tracking connection (RESP3, flag `t`) on `server`.
fn tracking_client(server: &RedisServer) -> String {
    let clients: Vec<String> = lines(&server.cli(&["CLIENT", "LIST"]))
        .into_iter()
        .filter(|c| c.contains(" resp=3"))
        .collect();
    assert_eq!(clients.len(), 1, "one tracking connection: {clients:?}");
    clients[0]
        .split(' ')
        .find_map(|part| part.strip_prefix("id="))
        .expect("an id")
        .to_owned()
}

/// At most `max_sessions` entries, whatever is loaded; every load still
/// answers what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_holds_at_most_max_sessions() {
    let store = cached(
        &RedisServer::shared().url(),
        &unique_prefix("cache-bound"),
        3,
    );
    coherent(&store).await;
    let t = now();
    let ids: Vec<SessionId> = (0..10).map(|n| sid(&format!("bound{n}"))).collect();
    for id in &ids {
        store
            .write(&create(id, t, &[("n", b"1")]))
            .await
            .expect("write");
    }
    for round in 0..3 {
        for id in &ids {
            assert_eq!(
                field(&load(&store, id).await, "n").as_deref(),
                Some(&b"1"[..])
            );
            assert!(
                stats(&store).entries <= 3,
                "round {round}: {:?}",
                stats(&store)
            );
        }
    }
    assert_eq!(stats(&store).entries, 3);
}

/// A cached session is not served past its idle timeout: the load goes to
/// Redis (a miss, not a hit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_not_served_past_its_expiry() {
    let store = ready("cache-expiry").await;
    let t = now();
    let id = sid("expiring");
    // Idle timeout 60 s from `t`.
    store
        .write(&create(&id, t, &[("n", b"1")]))
        .await
        .expect("write");
    cache_it(&store, &id).await;
    let before = stats(&store);
    store.load(&id, t + 59_999).await.expect("load");
    assert_eq!(stats(&store).hits, before.hits + 1, "still live: a hit");
    store.load(&id, t + 60_000).await.expect("load");
    let after = stats(&store);
    assert_eq!(after.hits, before.hits + 1, "expired: not a hit");
    assert_eq!(after.misses, before.misses + 1, "expired: read from Redis");
}

/// Redis' own expiry of the key (its TTL) reaches the cache as an
/// invalidation too: the key is given 2 s to live (a change, before it is
/// cached), cached, then expires with no command touching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_expires_in_redis_is_invalidated() {
    let server = RedisServer::start();
    let store = cached(&server.url(), "sessionkit:", 100);
    coherent(&store).await;
    let id = sid("ttl");
    store
        .write(&create(&id, now(), &[("n", b"1")]))
        .await
        .expect("write");
    let key = store.key_for(&id);
    assert_eq!(server.cli(&["PEXPIRE", &key, "2000"]), "1");
    cache_it(&store, &id).await;
    let seen = stats(&store).invalidations;
    until(&store, "the expiry's invalidation", |s| {
        s.invalidations > seen
    })
    .await;
    assert_eq!(load(&store, &id).await, Loaded::Absent);
}

/// The store is usable through `dyn` with the cache on (as the manager
/// holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_store_works_as_a_dyn_store() {
    let store = ready("cache-dyn").await;
    let dynamic: Arc<dyn DynSessionStore> = Arc::new(store.clone());
    let id = sid("dyn");
    let t = now();
    dynamic
        .write_boxed(&create(&id, t, &[("n", b"1")]))
        .await
        .expect("write");
    dynamic.load_boxed(&id, t).await.expect("load");
    dynamic.load_boxed(&id, t).await.expect("load");
    assert!(stats(&store).hits >= 1);
}

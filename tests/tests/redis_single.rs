//! The Redis store against one `redis-server` started by the test: the
//! acceptance suite, then the Redis-specific checks (layout, TTLs, round
//! trips per request, concurrency, faults).

mod redis_common;

use std::time::Duration;

use redis_common::{
    arc, assert_hashed, change, concurrent_requests_keep_every_field, cookie, create, fast, id,
    now, steady_manager, ttl_follows_the_session,
};
use sessionkit::id::SessionId;
use sessionkit::store::Loaded;
use sessionkit::store::{SessionStore, StoreError};
use sessionkit::{Config, ErrorChain, RedisStore, SessionError, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::redis_server::{lines, unique_prefix, RedisServer};
use sessionkit_tests::support::{Profile, TestRequest, NAME, TAGS, VISITS};

fn store(server: &RedisServer, test: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .prefix(unique_prefix(test))
        .build()
        .expect("store")
}

mod acceptance {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisServer};

    sessionkit_tests::acceptance_suite!(async {
        RedisStore::builder(RedisServer::shared().url())
            .prefix(unique_prefix("acceptance"))
            .build()
            .expect("store")
    });
}

mod contract {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisServer};

    sessionkit_tests::all_store_contract_cases!(async {
        RedisStore::builder(RedisServer::shared().url())
            .prefix(unique_prefix("contract"))
            .build()
            .expect("store")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_set_on_every_write() {
    let server = RedisServer::shared();
    let store = store(server, "ttl");
    ttl_follows_the_session(&store, |key| {
        server
            .cli(&["PTTL", key])
            .parse()
            .expect("PTTL is a number")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_layout_and_hashed_key() {
    let server = RedisServer::shared();
    let prefix = unique_prefix("layout");
    let store = RedisStore::builder(server.url())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let manager = SessionManager::<Profile>::new(store.clone());
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.set(VISITS, 7);
    s.save().await.expect("save");
    let sid = s.id().to_string();

    let keys = lines(&server.cli(&["KEYS", &format!("{prefix}*")]));
    assert_hashed(&store, &keys, &sid);
    assert!(
        !server.cli(&["KEYS", "*"]).contains(&sid),
        "the raw id appears nowhere in Redis"
    );
    assert_eq!(server.cli(&["TYPE", &keys[0]]), "hash");
    let mut names = lines(&server.cli(&["HKEYS", &keys[0]]));
    names.sort();
    assert_eq!(names, ["$at", "$meta", "name", "visits"]);
    // version:created:issued:idle:deadline, no absolute timeout here.
    let meta = server.cli(&["HGET", &keys[0], "$meta"]);
    let parts: Vec<&str> = meta.split(':').collect();
    assert_eq!(parts.len(), 5, "{meta}");
    assert_eq!(parts[0], "2", "the format version: {meta}");
    assert_eq!(parts[3], "1800000", "the idle timeout: {meta}");
    assert_eq!(parts[4], "", "no deadline: {meta}");
    assert_eq!(parts[2], parts[1], "issued when created: {meta}");
    let at = server.cli(&["HGET", &keys[0], "$at"]);
    assert_eq!(at, parts[1], "accessed when created");
    // A read-only request with no touch due writes nothing at all.
    request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), "ada"))
        .await
        .expect("load");
    assert_eq!(server.cli(&["HGET", &keys[0], "$at"]), at);
    assert_eq!(server.cli(&["HGET", &keys[0], "$meta"]), meta);
    // MessagePack bytes as the runtime encoded them: 7 is the fixint 0x07.
    assert_eq!(
        server.cli(&["HSTRLEN", &keys[0], "visits"]),
        "1",
        "one byte of MessagePack"
    );
}

/// The commands each operation costs, read from `INFO commandstats` on a
/// server of its own: one `EVALSHA` per load or save, no `PING`/`UNWATCH`
/// from the pool, nothing for a request that does not touch the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_load_and_save() {
    let server = RedisServer::start();
    let store = RedisStore::from_url(server.url()).expect("store");
    let manager = steady_manager::<Profile>(store);
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    let sid = s.id().to_string();
    // Warm-up: a connection made, both scripts cached on the server.
    request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("warm-up");

    server.reset_stats();
    let n = 40;
    for _ in 0..n {
        let (_, _) = request(&manager, &cookie(&sid), |s| {
            assert_eq!(s.get(NAME), "ada");
        })
        .await
        .expect("request");
    }
    // `INFO commandstats` also counts the commands a script runs inside the
    // server. A read-only request with no touch due is one HGETALL.
    let mut calls = server.all_calls();
    calls.retain(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"));
    calls.sort();
    assert_eq!(
        calls,
        [("hgetall".to_owned(), n)],
        "a read-only request is one HGETALL; no script, no write, no PING, no UNWATCH"
    );

    server.reset_stats();
    for i in 0..n {
        request(&manager, &cookie(&sid), move |s| {
            s.set(VISITS, i as u32 + 1)
        })
        .await
        .expect("request");
    }
    assert_eq!(server.calls("hgetall"), n, "a load each");
    assert_eq!(server.calls("evalsha"), n, "a write each");
    // Inside the write script: HMGET (live check, expectations), HSET, PEXPIRE.
    assert_eq!(server.calls("hmget"), n);
    assert_eq!(server.calls("hset"), n);
    assert_eq!(server.calls("pexpire"), n);
    assert_eq!(server.calls("ping"), 0);
    assert_eq!(server.calls("unwatch"), 0);
    assert_eq!(server.calls("eval"), 0);

    // A request that never touches the session sends nothing at all.
    server.reset_stats();
    for _ in 0..n {
        let pending = manager.begin();
        pending.capture(&cookie(&sid));
        assert!(pending.finish(false).await.expect("finish").is_empty());
    }
    let calls = server.all_calls();
    assert!(
        calls
            .iter()
            .all(|(name, _)| name == "info" || name == "config|resetstat"),
        "untouched requests sent {calls:?}"
    );
}

/// With the health check forced on every checkout, the pool pays one `PING`
/// per operation: what the default manager of `deadpool-redis` does (plus
/// `UNWATCH`), and what the default interval avoids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_interval_controls_pings() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .health_check_interval(Duration::ZERO)
        .build()
        .expect("store");
    let sid = id(1);
    let t = now();
    store
        .write(&create(&sid, t, &[("a", b"\x01")]))
        .await
        .expect("save");
    server.reset_stats();
    for _ in 0..10 {
        let loaded = store.load(&sid, now()).await.expect("load");
        assert!(matches!(loaded, Loaded::Session(_)));
    }
    assert_eq!(server.calls("hgetall"), 10);
    assert_eq!(server.calls("ping"), 10, "checked on every checkout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_session_lose_nothing() {
    concurrent_requests_keep_every_field(store(RedisServer::shared(), "concurrent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_leaves_no_old_key() {
    let server = RedisServer::shared();
    let store = store(server, "rotate");
    let manager = SessionManager::<Profile>::new(store.clone());
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    let old = s.id();
    let old_key = store.key_for(&old);
    assert_eq!(server.cli(&["EXISTS", &old_key]), "1");

    let (s, update) = request(&manager, &cookie(old.as_str()), |s| {
        s.regenerate().expect("regenerate");
    })
    .await
    .expect("request");
    assert!(update.set_cookie.is_some());
    let new_key = store.key_for(&s.id());
    assert_ne!(new_key, old_key);
    assert_eq!(server.cli(&["EXISTS", &old_key]), "0", "old key gone");
    assert_eq!(
        server.cli(&["HEXISTS", &new_key, "name"]),
        "1",
        "data moved"
    );
    let ttl: i64 = server.cli(&["PTTL", &new_key]).parse().expect("PTTL");
    assert!(ttl > 0, "the new key has a TTL: {ttl}");
}

/// A stored hash that is damaged never makes loading fail: a field that does
/// not decode falls back to its default; unreadable metadata makes the
/// session absent (deleted); an unknown format version makes it absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_sessions_never_fail_a_request() {
    let server = RedisServer::shared();
    let store = store(server, "corrupt");
    let manager = SessionManager::<Profile>::new(store.clone());
    let saved = |name: &'static str| {
        let manager = manager.clone();
        async move {
            let s = manager.create().expect("id");
            s.set(NAME, name.into());
            s.set(VISITS, 3);
            s.save().await.expect("save");
            s.id().to_string()
        }
    };

    // A field that is not valid MessagePack for its type.
    let sid = saved("ada").await;
    let key = store.key_for(&SessionId::parse(&sid).expect("id"));
    server.cli(&["HSET", &key, "visits", "\u{c1}garbage"]);
    let (s, _) = request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("loads");
    assert!(!s.fresh());
    assert_eq!(s.get(NAME), "ada");
    assert_eq!(s.get(VISITS), 0, "the field's default");

    // Metadata missing, malformed, or not a hash at all: a fresh session, the key deleted.
    for damage in [
        vec!["HDEL", "$meta"],
        vec!["HSET", "$meta", "2:1:soon:1800000:"],
        vec!["HSET", "$meta", "2:1:1:"],
        vec!["HSET", "$meta", ""],
        vec!["HDEL", "$at"],
    ] {
        let sid = saved("bob").await;
        let key = store.key_for(&SessionId::parse(&sid).expect("id"));
        let mut args = vec![damage[0], key.as_str()];
        args.extend(&damage[1..]);
        server.cli(&args);
        let (s, _) = request(&manager, &cookie(&sid), |_| {})
            .await
            .expect("no error");
        assert!(s.fresh(), "{damage:?}: treated as absent");
        assert_ne!(s.id().as_str(), sid, "a new id, never the old one");
        assert_eq!(server.cli(&["EXISTS", &key]), "0", "{damage:?}: deleted");
    }
    let sid = saved("eve").await;
    let key = store.key_for(&SessionId::parse(&sid).expect("id"));
    server.cli(&["DEL", &key]);
    server.cli(&["SET", &key, "not a hash"]);
    let (s, _) = request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("no error");
    assert!(s.fresh());
    assert_eq!(server.cli(&["EXISTS", &key]), "0");

    // Another format version: absent, and left alone for its own release.
    let sid = saved("zed").await;
    let key = store.key_for(&SessionId::parse(&sid).expect("id"));
    let meta = server.cli(&["HGET", &key, "$meta"]);
    let future = format!("99{}", &meta[meta.find(':').expect("version:")..]);
    server.cli(&["HSET", &key, "$meta", &future]);
    let (s, _) = request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("no error");
    assert!(s.fresh());
    assert_eq!(server.cli(&["EXISTS", &key]), "1", "not ours to delete");
    assert_eq!(
        server.cli(&["HGET", &key, "$meta"]),
        future,
        "not touched either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_session_writes_nothing() {
    let server = RedisServer::shared();
    let prefix = unique_prefix("oversized");
    let store = RedisStore::builder(server.url())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let manager = SessionManager::<Profile>::builder(store.clone())
        .config(
            Config::builder()
                .max_session_bytes(200_usize)
                .build()
                .expect("config"),
        )
        .build()
        .expect("manager");
    let pending = manager.begin();
    let s = pending.load(&TestRequest::new()).await.expect("fresh");
    s.set(TAGS, vec!["x".repeat(300)]);
    assert!(matches!(
        pending.finish(false).await,
        Err(SessionError::TooLarge { .. })
    ));
    assert_eq!(
        server.cli(&["KEYS", &format!("{prefix}*")]),
        "",
        "nothing written"
    );

    let (s, _) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("small session");
    let key = store.key_for(&s.id());
    let before = server.cli(&["HGETALL", &key]);
    let pending = manager.begin();
    let s = pending.load(&cookie(s.id().as_str())).await.expect("load");
    s.set(NAME, "y".repeat(300));
    assert!(matches!(
        pending.finish(false).await,
        Err(SessionError::TooLarge { .. })
    ));
    let after = server.cli(&["HGETALL", &key]);
    // The load touched `$meta`; the fields are as before.
    let fields = |dump: &str| {
        lines(dump)
            .chunks(2)
            .filter(|kv| !kv[0].starts_with('$'))
            .map(<[String]>::to_vec)
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&after), fields(&before), "nothing written");
}

/// Redis killed while serving: every operation fails quickly with a store
/// error (no hang, no panic); started again on the same port, the same store
/// works without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back() {
    let mut server = RedisServer::start();
    let store = fast(RedisStore::builder(server.url()));
    let manager = SessionManager::<Profile>::new(store.clone());
    let (s, _) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("request");
    let sid = s.id();

    server.stop();
    let t = now();
    let other = id(2);
    for round in 0..3 {
        let results = [
            store.load(&sid, t).await.map(drop),
            store
                .write(&change(&sid, t, &[("name", b"\xa1x")], &[], &[]))
                .await
                .map(drop),
            store
                .write(&sessionkit_tests::store_contract::rotate(
                    &sid,
                    &other,
                    t,
                    0,
                    &[],
                    &[],
                ))
                .await
                .map(drop),
            store.delete(&sid).await,
        ];
        for result in results {
            match result {
                Err(StoreError::Unavailable(_) | StoreError::Timeout(_)) => {}
                other => panic!("round {round}: expected a store error, got {other:?}"),
            }
        }
    }
    let pending = manager.begin();
    match pending.load(&cookie(sid.as_str())).await {
        Err(SessionError::Store(error)) => {
            let message = ErrorChain(&error).to_string();
            assert!(
                message.contains("127.0.0.1") || message.contains("did not answer"),
                "the message says what to check: {message}"
            );
        }
        other => panic!("expected a store error, got {other:?}"),
    }

    server.restart();
    // The data is gone (no persistence), but the same store works at once.
    let (s, update) = request(&manager, &TestRequest::new(), |s| {
        s.set(NAME, "back".into())
    })
    .await
    .expect("works again after the restart");
    assert!(update.set_cookie.is_some());
    let loaded = manager
        .load_by_id(s.id().as_str())
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(loaded.get(NAME), "back");
}

/// A frozen Redis (accepting nothing, answering nothing) costs each operation
/// at most the configured timeouts, then a `Timeout` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_times_out() {
    let server = RedisServer::start();
    let store = fast(RedisStore::builder(server.url()));
    let sid = id(3);
    let t = now();
    store
        .write(&create(&sid, t, &[("a", b"\x01")]))
        .await
        .expect("save");
    server.pause();
    let load = store.load(&sid, t).await;
    let save = store
        .write(&change(&sid, t, &[("a", b"\x02")], &[], &[]))
        .await
        .map(drop);
    server.resume();
    for result in [load.map(drop), save] {
        assert!(
            matches!(
                result,
                Err(StoreError::Timeout(_) | StoreError::Unavailable(_))
            ),
            "{result:?}"
        );
    }
    // Answering again: the store recovers by itself.
    let mut ok = false;
    for _ in 0..20 {
        if store.load(&sid, now()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the store works again once Redis answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails_fast() {
    // A port with nothing behind it: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let store = fast(RedisStore::builder(format!("redis://127.0.0.1:{port}")));
    let manager = SessionManager::<Profile>::new(arc(store.clone()));
    match manager.load_by_id(id(4).as_str()).await {
        Err(SessionError::Store(StoreError::Unavailable(error))) => {
            assert!(error.to_string().contains(&port.to_string()), "{error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(RedisStore::from_url("not a url").is_err());
    assert!(RedisStore::builder("redis://127.0.0.1:1")
        .pool_size(0)
        .build()
        .is_err());
}

/// Issue 20, reproduction 4: ten renewals of one signed-in session, and no
/// listing. Before, the user's index ZSET held 11 entries (one per id ever
/// used) until something listed it; now each rotated-away id's entry lapses
/// with its grace period and the next index step drops it, so the ZSET
/// holds the live id and at most the one still in its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_leave_the_index_bounded_without_a_listing() {
    use sessionkit::store::PrincipalWrite;
    use sessionkit_tests::store_contract::{principal, rotate, with};
    let server = RedisServer::shared();
    let prefix = unique_prefix("bounded-index");
    let store = RedisStore::builder(server.url())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let p = principal("bounded");
    let t = now();
    let mut current = id(700);
    let first = with(
        create(&current, t, &[("name", b"\xa1a")]),
        PrincipalWrite::Join(p.clone()),
    );
    assert_eq!(
        store.write(&first).await.expect("login"),
        sessionkit::store::Written::Done
    );
    let loaded = [("name", Some(&b"\xa1a"[..]))];
    let pattern = format!("{prefix}principal:*");
    let index = lines(&server.cli(&["--scan", "--pattern", &pattern]));
    assert_eq!(index.len(), 1, "{index:?}");
    let zcard = || -> u64 { server.cli(&["ZCARD", &index[0]]).parse().expect("ZCARD") };
    assert_eq!(zcard(), 1);
    let mut most = 0;
    for n in 1..=10u64 {
        let next = id(700 + u32::try_from(n).expect("small"));
        // Renewal with a 5 ms grace period, 10 ms apart.
        let renew = with(
            rotate(&current, &next, t + n * 10, 5, &loaded, &[]),
            PrincipalWrite::Keep(p.clone()),
        );
        assert_eq!(
            store.write(&renew).await.expect("renewal"),
            sessionkit::store::Written::Done
        );
        current = next;
        most = most.max(zcard());
    }
    assert!(
        most <= 2,
        "at most the live id and one in its grace period, saw {most}"
    );
}

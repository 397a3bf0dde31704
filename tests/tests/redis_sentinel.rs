//! `RedisStore` through Redis Sentinel (a primary, two replicas, three
//! sentinels, all started by the test): the store contract, and a failover
//! asked of the sentinels (`SENTINEL FAILOVER`) and forced by killing the
//! primary (`kill -9`): the store finds the new primary by itself, and every
//! session written (and replicated) before the failover is still there.
//! Every wait is for a role change or an answer, bounded; no sleep is tuned
//! to timing.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sessionkit::store::{Loaded, SessionStore, StoreError};
use sessionkit::RedisStore;
use sessionkit_tests::redis_server::RedisSentinel;
use sessionkit_tests::store_contract::{create, sid};

fn shared() -> &'static RedisSentinel {
    static SET: OnceLock<RedisSentinel> = OnceLock::new();
    SET.get_or_init(RedisSentinel::start)
}

fn store_on(set: &RedisSentinel) -> RedisStore {
    RedisStore::sentinel_builder(set.sentinel_urls(), RedisSentinel::SERVICE)
        .prefix(sessionkit_tests::redis_server::unique_prefix("sentinel"))
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .wait_timeout(Duration::from_millis(500))
        .build()
        .expect("store")
}

mod contract {
    sessionkit_tests::all_store_contract_cases!(async { super::store_on(super::shared()) });
}

const T: u64 = 1_767_225_600_000;

/// Loads `id` until the store answers (bounded): the first operations after
/// a failover may fail while the old connections break and new ones find
/// the primary. Returns how many failed first.
async fn load_when_up(store: &RedisStore, id: &sessionkit::id::SessionId) -> (Loaded, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = 0;
    loop {
        match store.load(id, T + 1).await {
            Ok(loaded) => return (loaded, failed),
            Err(StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::Backend(_))
                if Instant::now() < deadline =>
            {
                failed += 1;
            }
            Err(error) => panic!("the store did not come back: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_failovers_and_keeps_replicated_sessions() {
    let mut set = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let store = store_on(&set);
    let before = sid("before-failover");
    let write = create(&before, T, &[("cart", b"3 apples")]);
    assert_eq!(
        store.write(&write).await.unwrap(),
        sessionkit::store::Written::Done
    );
    let first = set.primary_port();
    tokio::task::block_in_place(|| set.sync_replicas());

    // A failover the sentinels are asked for: the old primary stays up as
    // a replica, so the store's connections to it answer READONLY to writes.
    let promoted = tokio::task::block_in_place(|| set.failover());
    assert_ne!(promoted, first);
    let (loaded, _) = load_when_up(&store, &before).await;
    assert!(matches!(loaded, Loaded::Session(ref r) if r.fields.get("cart").is_some()));
    let after = sid("after-failover");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .write(&create(&after, T, &[("cart", b"1 pear")]))
            .await
        {
            Ok(written) => {
                assert_eq!(written, sessionkit::store::Written::Done);
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "no write after the failover: {error}"
            ),
        }
    }
    let Loaded::Session(_) = load_when_up(&store, &after).await.0 else {
        panic!("written on the new primary")
    };

    // The primary killed: a replica is promoted, the store finds it.
    tokio::task::block_in_place(|| set.sync_replicas());
    let killed = set.primary_port();
    let promoted = tokio::task::block_in_place(|| set.kill_primary());
    assert_ne!(promoted, killed);
    for id in [&before, &after] {
        let (loaded, _) = load_when_up(&store, id).await;
        assert!(
            matches!(loaded, Loaded::Session(_)),
            "a replicated session survives"
        );
    }
    let last = sid("after-kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .write(&create(&last, T, &[("cart", b"x")]))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no write after the primary was killed"
        );
    }
}

#[test]
fn sentinel_urls_build_a_store_and_bad_ones_say_why() {
    assert!(RedisStore::from_url("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/svc").is_ok());
    let error = RedisStore::from_url("redis+sentinel://127.0.0.1:26379").unwrap_err();
    assert!(error.to_string().contains("redis+sentinel://"), "{error}");
}

/// `wait_for_replicas`: a write is acknowledged once the replicas have it;
/// with the replicas gone it fails with `NotReplicated` (a 503 for the
/// request), although the primary applied it: the next load sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_wait_for_the_replicas_and_say_when_they_did_not() {
    let mut set = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let store = RedisStore::sentinel_builder(set.sentinel_urls(), RedisSentinel::SERVICE)
        .wait_for_replicas(2, Duration::from_millis(300))
        .build()
        .expect("store");
    let kept = sid("durable");
    assert_eq!(
        store
            .write(&create(&kept, T, &[("cart", b"1")]))
            .await
            .unwrap(),
        sessionkit::store::Written::Done
    );
    // Both replicas gone: nothing can acknowledge.
    let primary = set.primary_port();
    for server in set.servers.iter_mut().filter(|s| s.port() != primary) {
        server.stop();
    }
    let unsure = sid("not-replicated");
    let error = store
        .write(&create(&unsure, T, &[("cart", b"2")]))
        .await
        .unwrap_err();
    let StoreError::Unavailable(cause) = &error else {
        panic!("{error:?}")
    };
    let cause = cause
        .downcast_ref::<sessionkit::NotReplicated>()
        .expect("NotReplicated");
    assert_eq!((cause.wanted, cause.acked), (2, 0));
    assert!(cause
        .to_string()
        .contains("was applied on the Redis primary"));
    // Not acknowledged is not "not applied": the primary has it.
    assert!(matches!(
        store.load(&unsure, T + 1).await.unwrap(),
        Loaded::Session(_)
    ));
    assert!(
        store.delete(&kept).await.is_err(),
        "a delete waits for the replicas too"
    );
}

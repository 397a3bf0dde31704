//! The Redis store against a three-master Redis Cluster started by the test:
//! the acceptance suite, then cluster-specific checks (rotation across hash
//! slots, TTLs, round trips, concurrency, a node going down).

mod redis_common;

use redis_common::{
    assert_hashed, concurrent_requests_keep_every_field, cookie, fast, steady_manager,
    ttl_follows_the_session,
};
use sessionkit::{RedisStore, SessionError, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::redis_server::{unique_prefix, RedisCluster};
use sessionkit_tests::support::{Profile, TestRequest, NAME};

fn store(cluster: &RedisCluster, test: &str) -> RedisStore {
    RedisStore::cluster_builder(cluster.urls())
        .prefix(unique_prefix(test))
        .build()
        .expect("store")
}

mod acceptance {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisCluster};

    sessionkit_tests::acceptance_suite!(async {
        RedisStore::cluster_builder(RedisCluster::shared().urls())
            .prefix(unique_prefix("acceptance"))
            .build()
            .expect("store")
    });
}

mod contract {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisCluster};

    sessionkit_tests::all_store_contract_cases!(async {
        RedisStore::cluster_builder(RedisCluster::shared().urls())
            .prefix(unique_prefix("contract"))
            .build()
            .expect("store")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_set_on_every_write() {
    let cluster = RedisCluster::shared();
    let store = store(cluster, "ttl");
    ttl_follows_the_session(&store, |key| {
        cluster
            .cli(&["PTTL", key])
            .parse()
            .expect("PTTL is a number")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_hashed_and_spread_over_the_nodes() {
    let cluster = RedisCluster::shared();
    let prefix = unique_prefix("spread");
    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let manager = SessionManager::<Profile>::new(store.clone());
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    assert_hashed(
        &store,
        &cluster.keys(&format!("{prefix}*")),
        s.id().as_str(),
    );

    for _ in 0..30 {
        let s = manager.create().expect("id");
        s.set(NAME, "x".into());
        s.save().await.expect("save");
    }
    let per_node: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|n| {
            sessionkit_tests::redis_server::lines(&n.cli(&["KEYS", &format!("{prefix}*")])).len()
        })
        .collect();
    assert_eq!(per_node.iter().sum::<usize>(), 31);
    assert!(
        per_node.iter().filter(|&&n| n > 0).count() >= 2,
        "sessions land on several masters: {per_node:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_load() {
    // A cluster of its own, so no other test's commands are counted.
    let cluster = RedisCluster::start();
    let store = RedisStore::cluster_builder(cluster.urls())
        .build()
        .expect("store");
    let manager = steady_manager::<Profile>(store);
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    let sid = s.id().to_string();
    request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("warm-up");

    cluster.reset_stats();
    let n = 30;
    for _ in 0..n {
        request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), "ada"))
            .await
            .expect("request");
    }
    // A load with no touch due is one HGETALL: no script, no write.
    assert_eq!(cluster.calls("hgetall"), n);
    assert_eq!(cluster.calls("evalsha"), 0);
    assert_eq!(cluster.calls("eval"), 0);
    assert_eq!(cluster.calls("ping"), 0, "no health check per request");
    assert_eq!(cluster.calls("unwatch"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_session_lose_nothing() {
    concurrent_requests_keep_every_field(store(RedisCluster::shared(), "concurrent")).await;
}

/// Old and new ids hash to different slots (often different nodes): the new
/// key is written, then the old deleted; afterwards the old key is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_across_slots_leaves_no_old_key() {
    let cluster = RedisCluster::shared();
    let store = store(cluster, "rotate");
    let manager = SessionManager::<Profile>::new(store.clone());
    for _ in 0..10 {
        let s = manager.create().expect("id");
        s.set(NAME, "ada".into());
        s.save().await.expect("save");
        let old = s.id();
        let old_key = store.key_for(&old);
        assert_eq!(cluster.cli(&["EXISTS", &old_key]), "1");
        let (s, _) = request(&manager, &cookie(old.as_str()), |s| {
            s.regenerate().expect("regenerate");
        })
        .await
        .expect("request");
        let new_key = store.key_for(&s.id());
        assert_eq!(cluster.cli(&["EXISTS", &old_key]), "0", "old key gone");
        let meta = cluster.cli(&["HGET", &new_key, "$meta"]);
        assert!(meta.starts_with("2:"), "format version 2: {meta}");
        assert!(manager
            .load_by_id(old.as_str())
            .await
            .expect("load")
            .is_none());
        assert_eq!(
            manager
                .load_by_id(s.id().as_str())
                .await
                .expect("load")
                .expect("moved")
                .get(NAME),
            "ada"
        );
    }
}

/// A whole cluster going down: errors, quickly; back: works without a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_down_then_back() {
    let cluster = RedisCluster::start();
    let store = fast(RedisStore::cluster_builder(cluster.urls()));
    let manager = SessionManager::<Profile>::new(store);
    let (s, _) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("request");
    let sid = s.id().to_string();

    let mut cluster = cluster;
    cluster.pause_all();
    let result = request(&manager, &cookie(&sid), |_| {}).await;
    assert!(
        matches!(result, Err(SessionError::Store(_))),
        "a frozen cluster is a store error: {result:?}"
    );
    cluster.resume_all();
    assert_eq!(
        eventually(&manager, &sid).await.get(NAME),
        "ada",
        "the store works again once the cluster answers"
    );

    cluster.stop_all();
    for _ in 0..3 {
        let result = request(&manager, &cookie(&sid), |_| {}).await;
        assert!(
            matches!(result, Err(SessionError::Store(_))),
            "a stopped cluster is a store error: {result:?}"
        );
    }
    cluster.restart_all();
    // The data is gone (no persistence); new sessions work with the same store.
    let mut saved = None;
    for _ in 0..50 {
        if let Ok((s, _)) = request(&manager, &TestRequest::new(), |s| {
            s.set(NAME, "back".into())
        })
        .await
        {
            saved = Some(s.id().to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sid = saved.expect("the store works again after the restart");
    assert_eq!(eventually(&manager, &sid).await.get(NAME), "back");
}

/// Loads `sid`, retrying (bounded) while the cluster settles.
async fn eventually(manager: &SessionManager<Profile>, sid: &str) -> sessionkit::Session<Profile> {
    for _ in 0..50 {
        if let Ok(Some(s)) = manager.load_by_id(sid).await {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the session did not load within 5 s");
}

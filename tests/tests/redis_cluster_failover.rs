//! `RedisStore` on a Redis Cluster of three masters with one replica each
//! (started by the test, `cluster-node-timeout 1000`): a planned failover
//! (`CLUSTER FAILOVER`), a killed master (`kill -9`), and a slot migrated
//! between masters while its session is used (`ASK`, then `MOVED`). The
//! store keeps serving the sessions written (and replicated) before, without
//! a restart; while a slot has no master its operations fail with a typed
//! store error within the configured timeouts, never a panic, a hang or a
//! backend error (a 500). Every wait is for a role change or an answer,
//! bounded; no sleep is tuned to timing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessionkit::id::SessionId;
use sessionkit::store::{Loaded, SessionStore, StoreError, Written};
use sessionkit::RedisStore;
use sessionkit_tests::redis_server::{unique_prefix, RedisClusterHa};
use sessionkit_tests::store_contract::{create, sid, update};

const T: u64 = 1_767_225_600_000;
/// The store's connect, command and pool-wait timeouts.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The longest one operation may take: the wait, a connect and a command,
/// twice (a retry on a dead connection), and 100 ms (the store's bound), with
/// room for a loaded test machine.
const OPERATION_BOUND: Duration = Duration::from_millis(300 + 2 * 600 + 100 + 900);
/// How long the store may take to serve again after a failover.
const RECOVERY: Duration = Duration::from_secs(30);

fn store_on(cluster: &RedisClusterHa) -> RedisStore {
    RedisStore::cluster_builder(cluster.urls())
        .prefix(unique_prefix("failover"))
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .wait_timeout(TIMEOUT)
        .build()
        .expect("store")
}

async fn start() -> RedisClusterHa {
    tokio::task::spawn_blocking(RedisClusterHa::start)
        .await
        .expect("the cluster")
}

/// Sessions with a cart each, spread over the masters.
async fn sessions(store: &RedisStore, n: usize) -> Vec<SessionId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = sid(&format!("s{i}"));
        assert_eq!(
            store
                .write(&create(&id, T, &[("cart", b"3 apples")]))
                .await
                .expect("write before the failover"),
            Written::Done
        );
        ids.push(id);
    }
    ids
}

/// One failed operation: it must be a typed "try again" error, and it must
/// have failed within the configured timeouts.
fn check_failure(what: &str, error: &StoreError, took: Duration) {
    assert!(
        matches!(error, StoreError::Unavailable(_) | StoreError::Timeout(_)),
        "{what}: a failover is Unavailable or Timeout (a 503), not {error:?}"
    );
    assert!(
        took < OPERATION_BOUND,
        "{what}: failed after {took:?}, past the configured timeouts"
    );
}

/// Loads `id` until it answers (bounded), checking every failure on the way.
async fn load_when_up(store: &RedisStore, id: &SessionId) -> Loaded {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let begun = Instant::now();
        match store.load(id, T + 1).await {
            Ok(loaded) => return loaded,
            Err(error) => {
                check_failure("load after the failover", &error, begun.elapsed());
                assert!(Instant::now() < deadline, "no load within {RECOVERY:?}");
            }
        }
    }
}

/// Writes until one is acknowledged (bounded), checking every failure.
async fn write_when_up(store: &RedisStore, write: &sessionkit::store::Write) -> Written {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let begun = Instant::now();
        match store.write(write).await {
            Ok(written) => return written,
            Err(error) => {
                check_failure("write after the failover", &error, begun.elapsed());
                assert!(Instant::now() < deadline, "no write within {RECOVERY:?}");
            }
        }
    }
}

fn has_cart(loaded: &Loaded) -> bool {
    matches!(loaded, Loaded::Session(r) if r.fields.get("cart").is_some())
}

/// What a probe saw while the cluster changed under it.
#[derive(Debug, Default)]
struct Probe {
    ok: usize,
    failed: usize,
}

/// Loads and updates `id` in a loop until `done` finishes, checking each
/// failure; then returns what it saw and what `done` returned.
async fn probe_while<R: Send + 'static>(
    store: &RedisStore,
    id: &SessionId,
    done: tokio::task::JoinHandle<R>,
) -> (Probe, R) {
    let mut probe = Probe::default();
    let mut n = 0u32;
    while !done.is_finished() {
        n += 1;
        let begun = Instant::now();
        let result = if n.is_multiple_of(2) {
            store.load(id, T + 1).await.map(drop)
        } else {
            store
                .write(&update(id, T + u64::from(n), &[("seen", b"1")], &[], &[]))
                .await
                .map(drop)
        };
        match result {
            Ok(()) => probe.ok += 1,
            Err(error) => {
                check_failure("during the failover", &error, begun.elapsed());
                probe.failed += 1;
                // A failed operation returns at once (the slot has no
                // master): don't spin on the two cores the cluster needs.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    eprintln!("while the cluster changed: {probe:?}");
    (probe, done.await.expect("the failover"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_every_session_and_takes_writes() {
    let cluster = Arc::new(Mutex::new(start().await));
    let store = store_on(&cluster.lock().unwrap());
    let ids = sessions(&store, 12).await;
    let key = store.key_for(&ids[0]);
    let (old, masters) = {
        let c = cluster.lock().unwrap();
        c.sync_replicas();
        (c.master_of(&key), c.masters())
    };
    assert_eq!(masters.len(), 3);

    let failover = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().failover(old))
    };
    let (probe, new) = probe_while(&store, &ids[0], failover).await;
    assert_ne!(new, old);
    assert_eq!(cluster.lock().unwrap().master_of(&key), new);
    assert!(
        probe.ok > 0,
        "the session was served during the failover: {probe:?}"
    );

    for id in &ids {
        assert!(
            has_cart(&load_when_up(&store, id).await),
            "kept through the failover"
        );
    }
    // Writes to the slot the new master took over, and new sessions.
    let written = write_when_up(
        &store,
        &update(&ids[0], T + 10, &[("cart", b"4")], &[], &[]),
    )
    .await;
    assert_eq!(written, Written::Done);
    for i in 0..6 {
        let id = sid(&format!("after{i}"));
        assert_eq!(
            write_when_up(&store, &create(&id, T, &[("cart", b"1 pear")])).await,
            Written::Done
        );
        assert!(has_cart(&load_when_up(&store, &id).await));
    }
    // The old master is a replica now and still up: nothing is served from it.
    let stale = cluster.lock().unwrap().cli_at(old, &["HGETALL", &key]);
    assert!(
        stale.starts_with("MOVED"),
        "the demoted master redirects: {stale}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_fast_then_its_replica_serves() {
    let cluster = Arc::new(Mutex::new(start().await));
    let store = store_on(&cluster.lock().unwrap());
    let ids = sessions(&store, 12).await;
    let key = store.key_for(&ids[0]);
    let old = {
        let c = cluster.lock().unwrap();
        c.sync_replicas();
        c.master_of(&key)
    };

    let kill = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().kill_master(old))
    };
    let (probe, new) = probe_while(&store, &ids[0], kill).await;
    assert_ne!(new, old);
    assert!(
        probe.failed > 0,
        "while the slot had no master its operations failed: {probe:?}"
    );

    for id in &ids {
        assert!(
            has_cart(&load_when_up(&store, id).await),
            "a replicated session survives its master"
        );
    }
    assert_eq!(
        write_when_up(
            &store,
            &update(&ids[0], T + 10, &[("cart", b"4")], &[], &[])
        )
        .await,
        Written::Done
    );
    let id = sid("after-kill");
    assert_eq!(
        write_when_up(&store, &create(&id, T, &[("cart", b"x")])).await,
        Written::Done
    );
    assert!(has_cart(&load_when_up(&store, &id).await));

    // The killed node comes back as a replica of its replacement; the store
    // goes on as before.
    tokio::task::block_in_place(|| cluster.lock().unwrap().restart(old));
    assert!(has_cart(&load_when_up(&store, &ids[0]).await));
    assert_eq!(
        write_when_up(
            &store,
            &update(&ids[0], T + 11, &[("cart", b"5")], &[], &[])
        )
        .await,
        Written::Done
    );
}

/// A slot migrated between masters while its session is used: during the
/// migration the source answers `ASK` for the moved key, afterwards `MOVED`;
/// loads, writes and the delete go on working and nothing is lost. Requests
/// are made one at a time between the harness's steps, so each step is
/// exercised exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrating_between_masters_keeps_its_session() {
    let cluster = start().await;
    let store = store_on(&cluster);
    let ids = sessions(&store, 1).await;
    let id = &ids[0];
    let key = store.key_for(id);
    let slot = cluster.slot_of(&key);
    let from = cluster.master_of_slot(slot);
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| *m != from)
        .expect("another master");

    tokio::task::block_in_place(|| cluster.begin_migration(slot, from, to));
    // Still on the source: served from there.
    assert!(has_cart(
        &store.load(id, T + 1).await.expect("load, migrating")
    ));
    let asked_before = cluster.calls_at(to, "asking");
    let moved = tokio::task::block_in_place(|| cluster.migrate_keys(slot, from, to));
    assert_eq!(moved, 1, "the session is one key");
    // Moved, slot still migrating: the source answers ASK.
    let asked = cluster.cli_at(from, &["EXISTS", &key]);
    assert!(asked.starts_with("ASK "), "the source redirects: {asked}");
    assert!(has_cart(
        &store.load(id, T + 2).await.expect("load after ASK")
    ));
    assert_eq!(
        store
            .write(&update(id, T + 3, &[("cart", b"during")], &[], &[]))
            .await
            .expect("write after ASK"),
        Written::Done
    );
    assert!(
        cluster.calls_at(to, "asking") > asked_before,
        "the store followed ASK redirections to the importing master"
    );

    tokio::task::block_in_place(|| cluster.finish_migration(slot, from, to));
    // The store's slot map still names the source: MOVED, then the target.
    match store.load(id, T + 4).await.expect("load after MOVED") {
        Loaded::Session(r) => {
            assert_eq!(r.fields.get("cart").map(|v| &v[..]), Some(&b"during"[..]))
        }
        other => panic!("the session after the migration: {other:?}"),
    }
    assert_eq!(
        store
            .write(&update(id, T + 5, &[("cart", b"after")], &[], &[]))
            .await
            .expect("write after MOVED"),
        Written::Done
    );
    assert_eq!(cluster.cli_at(to, &["EXISTS", &key]), "1", "on the target");
    store.delete(id).await.expect("delete after MOVED");
    assert_eq!(cluster.cli_at(to, &["EXISTS", &key]), "0");
}

/// `wait_for_replicas` on a Cluster: each write waits for the replica of the
/// master owning its key's slot (`WAIT` routed to that master, on the
/// connection the write went out on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_wait_for_the_replica_of_their_slot() {
    let mut cluster = start().await;
    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix(unique_prefix("durable"))
        .wait_for_replicas(1, Duration::from_millis(300))
        .build()
        .expect("a Cluster store with wait_for_replicas");
    let ids = sessions(&store, 12).await;
    let key = store.key_for(&ids[0]);
    let master = cluster.master_of(&key);
    let replica = cluster.replica_of(master).expect("a replica");
    let waits_before = cluster.calls_at(master, "wait");
    let others: u64 = cluster
        .masters()
        .into_iter()
        .filter(|m| *m != master)
        .map(|m| cluster.calls_at(m, "wait"))
        .sum();
    store
        .write(&update(&ids[0], T + 1, &[("cart", b"2")], &[], &[]))
        .await
        .expect("acknowledged by the replica");
    assert_eq!(
        cluster.calls_at(master, "wait"),
        waits_before + 1,
        "WAIT on the key's master"
    );
    let others_after: u64 = cluster
        .masters()
        .into_iter()
        .filter(|m| *m != master)
        .map(|m| cluster.calls_at(m, "wait"))
        .sum();
    assert_eq!(others_after, others, "and on no other master");

    // Its replica gone (and not failed over: the master is up), the write is
    // applied but not acknowledged.
    tokio::task::block_in_place(|| cluster.stop_node(replica));
    let error = store
        .write(&update(&ids[0], T + 2, &[("cart", b"3")], &[], &[]))
        .await
        .expect_err("no replica to acknowledge");
    let StoreError::Unavailable(cause) = &error else {
        panic!("{error:?}")
    };
    let cause = cause
        .downcast_ref::<sessionkit::NotReplicated>()
        .expect("NotReplicated");
    assert_eq!((cause.wanted, cause.acked), (1, 0));
    match store.load(&ids[0], T + 3).await.expect("load") {
        Loaded::Session(r) => assert_eq!(r.fields.get("cart").map(|v| &v[..]), Some(&b"3"[..])),
        other => panic!("{other:?}"),
    }
    // Sessions on the other masters are still acknowledged.
    let elsewhere = ids
        .iter()
        .find(|id| cluster.master_of(&store.key_for(id)) != master)
        .expect("a session on another master");
    store
        .write(&update(elsewhere, T + 4, &[("cart", b"9")], &[], &[]))
        .await
        .expect("another slot's replica acknowledges");
}

//! The PostgreSQL store against a server started by the test: the
//! acceptance suite, the store contract, then the PostgreSQL-specific
//! checks (layout, statements per request, schema, sweeper, faults).

mod acceptance {
    use sessionkit::PostgresStore;
    use sessionkit_tests::postgres_server::{unique_table, PostgresServer};

    sessionkit_tests::acceptance_suite!(async {
        PostgresStore::builder(PostgresServer::shared().url())
            .table(unique_table("acceptance"))
            .connect()
            .await
            .expect("store")
    });
}

mod contract {
    use sessionkit::PostgresStore;
    use sessionkit_tests::postgres_server::{unique_table, PostgresServer};

    sessionkit_tests::all_store_contract_cases!(async {
        PostgresStore::builder(PostgresServer::shared().url())
            .table(unique_table("contract"))
            .connect()
            .await
            .expect("store")
    });
}

use std::time::Duration;

use sessionkit::id::SessionId;
use sessionkit::store::{Loaded, SessionStore};
use sessionkit::{Config, PostgresStore, PostgresStoreBuilder, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::postgres_server::{unique_table, PostgresServer};
use sessionkit_tests::store_contract::create;
use sessionkit_tests::support::{Profile, TestRequest, NAME, VISITS};

fn cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

/// The statements each operation costs, read from `pg_stat_statements` on
/// a server of its own (top-level statements only, i.e. round trips): one
/// per load, one per save, nothing for a request that does not touch its
/// session, and no per-request `prepare` (statements are cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_load_and_save() {
    let server = PostgresServer::start();
    let table = unique_table("round_trips");
    let store = PostgresStore::builder(server.url())
        .table(table.clone())
        .pool_size(1)
        .sweep_interval(None)
        .connect()
        .await
        .expect("store");
    let manager = SessionManager::<Profile>::builder(store)
        .config(
            Config::builder()
                .disable_auto_renew(true)
                .build()
                .expect("config"),
        )
        .build()
        .expect("manager");
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.save().await.expect("save");
    let sid = s.id().to_string();
    // Warm-up: the connection prepares its statements once.
    request(&manager, &cookie(&sid), |s| s.set(VISITS, 1))
        .await
        .expect("warm-up");

    server.reset_stats();
    let n = 40u64;
    for _ in 0..n {
        request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), "ada"))
            .await
            .expect("request");
    }
    let sent = server.statements(&table);
    assert_eq!(sent.len(), 1, "only the load statement: {sent:?}");
    assert_eq!(
        sent[0].0, n,
        "one statement per read-only request: {sent:?}"
    );
    assert!(sent[0].1.starts_with("SELECT s.version"), "{sent:?}");

    server.reset_stats();
    for i in 0..n {
        request(&manager, &cookie(&sid), move |s| {
            s.set(VISITS, i as u32 + 2)
        })
        .await
        .expect("request");
    }
    let mut sent = server.statements(&table);
    sent.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(sent.len(), 2, "a load and a write: {sent:?}");
    assert!(
        sent.iter().all(|(calls, _)| *calls == n),
        "one load and one write call per request: {sent:?}"
    );
    assert!(sent
        .iter()
        .any(|(_, q)| q.contains(&format!("{table}_write\"("))));
    // Nothing else reached the server: no BEGIN/COMMIT, no health check.
    let others = server.psql(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'",
    );
    assert_eq!(
        others,
        (2 * n).to_string(),
        "every statement is one of those"
    );

    // A request that never touches the session sends nothing at all.
    server.reset_stats();
    for _ in 0..n {
        let pending = manager.begin();
        pending.capture(&cookie(&sid));
        assert!(pending.finish(false).await.expect("finish").is_empty());
    }
    assert!(server.statements(&table).is_empty());
}

/// Rows hold hashes, never the id; each field is its own row of
/// MessagePack bytes; a rotation leaves a tombstone that names no id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_holds_hashes_and_one_row_per_field() {
    let server = PostgresServer::shared();
    let table = unique_table("layout");
    let store = PostgresStore::builder(server.url())
        .table(table.clone())
        .connect()
        .await
        .expect("store");
    let manager = SessionManager::<Profile>::new(store.clone());
    let s = manager.create().expect("id");
    s.set(NAME, "ada".into());
    s.set(VISITS, 7);
    s.save().await.expect("save");
    let sid = s.id();
    let handle = PostgresStore::key_for(&sid);
    assert_eq!(
        server.psql(&format!("SELECT handle FROM \"{table}\"")),
        handle
    );
    assert_eq!(
        server.psql(&format!(
            "SELECT name || '=' || encode(value, 'hex') FROM \"{table}_fields\" ORDER BY name"
        )),
        "name=a3616461\nvisits=07",
        "one row per field, MessagePack bytes"
    );
    let dump = server.psql(&format!(
        "SELECT row_to_json(t)::text FROM \"{table}\" AS t UNION ALL \
         SELECT row_to_json(f)::text FROM \"{table}_fields\" AS f"
    ));
    assert!(!dump.contains(sid.as_str()), "no id in the tables");
    let (_, update) = request(&manager, &cookie(sid.as_str()), |s| {
        s.regenerate().expect("regenerate");
    })
    .await
    .expect("regenerate");
    assert!(update.set_cookie.is_some());
    assert_eq!(
        server.psql(&format!("SELECT count(*) FROM \"{table}_moves\"")),
        "0",
        "regenerate keeps no link"
    );
    assert_eq!(
        server.psql(&format!("SELECT count(*) FROM \"{table}_fields\"")),
        "2",
        "the fields stayed with the renamed row"
    );
}

/// Instances starting at once all migrate successfully; one version row.
/// A store that skips the migration finds the schema and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_ups_migrate_once() {
    let server = PostgresServer::shared();
    let table = unique_table("migrate");
    let starts = (0..6).map(|_| {
        PostgresStore::builder(server.url())
            .schema("sk_migrate")
            .table(table.clone())
            .connect()
    });
    for result in futures_util::future::join_all(starts).await {
        result.expect("every instance starts");
    }
    assert_eq!(
        server.psql(&format!(
            "SELECT string_agg(version::text, ',') FROM sk_migrate.\"{table}_schema\""
        )),
        "1"
    );
    let skipping = PostgresStore::builder(server.url())
        .schema("sk_migrate")
        .table(table)
        .skip_migration()
        .connect()
        .await
        .expect("store");
    let id = SessionId::parse("postgres-migrate-check-0001").expect("id");
    skipping
        .write(&create(&id, 1_000, &[("a", b"\x01")]))
        .await
        .expect("write");
    // The schema SQL is idempotent: running it again changes nothing.
    server.psql(&skipping.schema_sql());
    assert!(matches!(
        skipping.load(&id, 1_001).await.expect("load"),
        Loaded::Session(_)
    ));
}

/// The sweeper deletes expired sessions (fields and tombstones with them)
/// in batches, and leaves live ones alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_expired_rows_in_batches() {
    let server = PostgresServer::shared();
    let table = unique_table("sweep");
    let store = PostgresStore::builder(server.url())
        .table(table.clone())
        .sweep_interval(None)
        .sweep_batch(2)
        .connect()
        .await
        .expect("store");
    let t = 1_000;
    for n in 0..5 {
        let id = SessionId::parse(&format!("postgres-sweep-session-{n:04}")).expect("id");
        let mut w = create(&id, t, &[("a", b"\x01")]);
        w.ttl_ms = if n < 4 { 1 } else { 600_000 };
        store.write(&w).await.expect("write");
    }
    // Past the 1 ms TTL on the database's clock.
    server.psql("SELECT pg_sleep(0.05)");
    let swept = store.sweep().await.expect("sweep");
    assert_eq!(swept.sessions, 4);
    assert_eq!(swept.tombstones, 0);
    assert_eq!(
        swept.batches, 4,
        "2 + 2 + an empty batch, then 1 for tombstones"
    );
    assert_eq!(
        server.psql(&format!(
            "SELECT (SELECT count(*) FROM \"{table}\") || ',' || (SELECT count(*) FROM \"{table}_fields\")"
        )),
        "1,1",
        "the live session and its field stay"
    );
    let again = store.sweep().await.expect("sweep");
    assert_eq!(again.sessions, 0);
}

/// PostgreSQL stopped abruptly (immediate shutdown: every connection
/// dropped) while serving: every operation fails fast with a
/// A store on `server`, in a table of its own, whose connect, pool-wait and
/// statement timeouts are all 300 ms: the outage tests' store, which must
/// fail fast rather than wait out the defaults.
fn quick_to_fail(server: &PostgresServer, test: &str) -> PostgresStoreBuilder {
    let short = Duration::from_millis(300);
    PostgresStore::builder(server.url())
        .table(unique_table(test))
        .connect_timeout(short)
        .wait_timeout(short)
        .statement_timeout(short)
}

/// store error; started again on the same port, the same store works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_then_back() {
    let mut server = PostgresServer::start();
    let store = quick_to_fail(&server, "down")
        .connect()
        .await
        .expect("store");
    let manager = SessionManager::<Profile>::new(store.clone());
    let (s, _) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("request");
    let sid = s.id();
    // The test server commits asynchronously: make what it has durable
    // before the crash, as a production server's commits are.
    server.psql("CHECKPOINT");
    server.stop();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let result = store.load(&sid, 1).await;
        assert!(
            matches!(
                result,
                Err(sessionkit::store::StoreError::Unavailable(_)
                    | sessionkit::store::StoreError::Timeout(_))
            ),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    }
    server.restart();
    let loaded = manager
        .load_by_id(sid.as_str())
        .await
        .expect("works again after the restart")
        .expect("the session survived (PostgreSQL keeps its data)");
    assert_eq!(loaded.get(NAME), "ada");
}

/// A sweep reports what it deleted in the metrics
/// (`sessionkit_store_swept_total`, the sweep histogram); the background
/// sweeper runs on its interval.
#[test]
fn sweeps_report_their_figures_and_run_in_the_background() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = PostgresServer::shared();
    let expired = |table: String, n: u32| async move {
        let store = PostgresStore::builder(server.url())
            .table(table)
            .sweep_interval(None)
            .connect()
            .await
            .expect("store");
        for i in 0..n {
            let id = SessionId::parse(&format!("postgres-sweeps-session-{i:04}")).expect("id");
            let mut w = create(&id, 1_000, &[("a", b"\x01")]);
            w.ttl_ms = 1;
            store.write(&w).await.expect("write");
        }
        server.psql("SELECT pg_sleep(0.02)");
        store
    };
    let table = unique_table("sweep_metrics");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let store = expired(table.clone(), 2).await;
            assert_eq!(store.sweep().await.expect("sweep").sessions, 2);
        });
    });
    let mut swept = 0;
    let mut sweeps = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let kind = key
            .labels()
            .find(|l| l.key() == "kind")
            .map(|l| l.value().to_owned());
        match (key.name(), value) {
            ("sessionkit_store_swept_total", DebugValue::Counter(n))
                if kind.as_deref() == Some("session") =>
            {
                swept += n;
            }
            ("sessionkit_store_sweep_duration_seconds", DebugValue::Histogram(v)) => {
                sweeps += v.len();
            }
            _ => {}
        }
    }
    assert_eq!(swept, 2, "both expired sessions counted");
    assert_eq!(sweeps, 1, "the sweep timed");

    // In the background, every 20 ms: the rows go without a call.
    let table = unique_table("sweep_background");
    runtime.block_on(async {
        drop(expired(table.clone(), 2).await);
        let store = PostgresStore::builder(server.url())
            .table(table.clone())
            .sweep_interval(Some(Duration::from_millis(20)))
            .connect()
            .await
            .expect("store");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.psql(&format!("SELECT count(*) FROM \"{table}\"")) != "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "the sweeper did not run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(store);
    });
}

/// A connection killed by the server (`pg_terminate_backend`) costs at most
/// the operation in flight: a load is retried on a new connection, and the
/// store goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_connection_costs_at_most_one_operation() {
    let server = PostgresServer::shared();
    // Its own application name: only this test's connection is killed.
    let store = PostgresStore::builder(format!("{}?application_name=sk_terminate", server.url()))
        .table(unique_table("terminate"))
        .pool_size(1)
        .connect()
        .await
        .expect("store");
    let id = SessionId::parse("postgres-terminate-session-0001").expect("id");
    store
        .write(&create(&id, 1_000, &[("a", b"\x01")]))
        .await
        .expect("write");
    let killed = |server: &PostgresServer| {
        server.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'sk_terminate'",
        )
    };
    let names = server
        .psql("SELECT string_agg(coalesce(application_name, '?'), ',') FROM pg_stat_activity");
    assert!(
        killed(server).parse::<u32>().expect("a count") >= 1,
        "{names}"
    );
    assert!(
        matches!(store.load(&id, 1_001).await, Ok(Loaded::Session(_))),
        "a load on a killed connection is retried on a new one"
    );
    killed(server);
    let write = store
        .write(&sessionkit_tests::store_contract::update(
            &id,
            1_002,
            &[("a", b"\x02")],
            &[],
            &[],
        ))
        .await;
    // A write is never retried (it may have applied): it may fail, alone.
    if let Err(error) = &write {
        assert!(
            matches!(error, sessionkit::store::StoreError::Unavailable(_)),
            "{error:?}"
        );
    }
    let Ok(Loaded::Session(record)) = store.load(&id, 1_003).await else {
        panic!("the store works again")
    };
    assert!(record.fields.get("a").is_some());
}

/// `sslmode=require` (feature `postgres-tls`): the store talks TLS to a
/// server whose certificate is signed by the CA it was given, and the
/// server sees an encrypted connection; without that CA the certificate is
/// refused (the system's roots do not sign it), and a server without TLS
/// is refused rather than used in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_talks_tls_and_verifies_the_certificate() {
    let server = PostgresServer::start_tls();
    let url = format!("{}?sslmode=require&application_name=sk_tls", server.url());
    let store = PostgresStore::builder(url.clone())
        .table(unique_table("tls"))
        .tls_root_certificate(server.ca_pem())
        .connect()
        .await
        .expect("a TLS store");
    let id = SessionId::parse("postgres-tls-session-00000001").expect("id");
    store
        .write(&create(&id, 1_000, &[("a", b"\x01")]))
        .await
        .expect("write over TLS");
    assert!(matches!(
        store.load(&id, 1_001).await,
        Ok(Loaded::Session(_))
    ));
    let encrypted = server.psql(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'sk_tls'",
    );
    assert_eq!(encrypted, "t", "the store's connections use TLS");

    let untrusted = PostgresStore::builder(url)
        .table(unique_table("tls-untrusted"))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    let refused = untrusted.expect_err("a certificate the system's roots do not sign is refused");
    let why = sessionkit::ErrorChain(&refused).to_string();
    assert!(why.contains("certificate"), "{why}");

    let plain = PostgresServer::shared();
    let cleartext_only = PostgresStore::builder(format!("{}?sslmode=require", plain.url()))
        .table(unique_table("tls-plain"))
        .tls_root_certificate(server.ca_pem())
        .connect()
        .await;
    let refused = cleartext_only.expect_err("sslmode=require never falls back to the clear");
    let why = sessionkit::ErrorChain(&refused).to_string();
    assert!(why.contains("does not support TLS"), "{why}");
}

/// PostgreSQL frozen like a hung host (SIGSTOP to the postmaster and its
/// backends, by pid: connections stay open, the port still accepts TCP,
/// nothing answers): a load on the pooled connection and a write both
/// return a typed error bounded by the store's timeouts instead of
/// hanging; after SIGCONT the same store serves the session again. The
/// outer bound only catches a hang, it is not the assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_a_typed_error_not_a_hang() {
    use sessionkit::store::StoreError;

    let server = PostgresServer::start();
    let store = quick_to_fail(&server, "frozen")
        .pool_size(1)
        .sweep_interval(None)
        .connect()
        .await
        .expect("store");
    let id = SessionId::parse("postgres-frozen-session-0001").expect("id");
    store
        .write(&create(&id, 1_000, &[("a", b"\x01")]))
        .await
        .expect("write");

    let hang = Duration::from_secs(60);
    let stopped = server.pause();
    assert!(
        stopped.len() > 1,
        "the postmaster and its backends: {stopped:?}"
    );
    let load = tokio::time::timeout(hang, store.load(&id, 1_001))
        .await
        .expect("the load returned instead of hanging");
    assert!(
        matches!(load, Err(StoreError::Timeout(_))),
        "the pooled connection's query times out: {load:?}"
    );
    let write = tokio::time::timeout(
        hang,
        store.write(&sessionkit_tests::store_contract::update(
            &id,
            1_002,
            &[("a", b"\x02")],
            &[],
            &[],
        )),
    )
    .await
    .expect("the write returned instead of hanging");
    assert!(
        matches!(
            write,
            Err(StoreError::Timeout(_) | StoreError::Unavailable(_))
        ),
        "{write:?}"
    );
    server.resume(&stopped);

    let loaded = tokio::time::timeout(hang, store.load(&id, 1_003))
        .await
        .expect("the load returned");
    let Ok(Loaded::Session(record)) = loaded else {
        panic!("the same store serves the session after SIGCONT: {loaded:?}")
    };
    // The write sent into the frozen server may have applied when it woke.
    let a = record.fields.get("a").expect("field a").to_vec();
    assert!(a == b"\x01" || a == b"\x02", "{a:?}");
}

/// Rows damaged behind the store's back (SQL on its tables) never fail a
/// request and never cost another session, as on Redis
/// (`corrupt_sessions_never_fail_a_request`): a field value that is not
/// MessagePack for its type becomes the field's default, the other fields
/// load; unreadable metadata (a negative time or timeout) and another
/// format version make the session absent, so the client gets a fresh
/// session under a new id, and the row is left for the sweeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_rows_never_fail_a_request() {
    let server = PostgresServer::shared();
    let table = unique_table("damaged");
    let store = PostgresStore::builder(server.url())
        .table(table.clone())
        .connect()
        .await
        .expect("store");
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
    let sid_of = |sid: &str| {
        let handle = PostgresStore::key_for(&SessionId::parse(sid).expect("id"));
        format!("(SELECT sid FROM \"{table}\" WHERE handle = '{handle}')")
    };
    let bystander = saved("bystander").await;

    // A field that is not valid MessagePack for its type.
    let sid = saved("ada").await;
    server.psql(&format!(
        "UPDATE \"{table}_fields\" SET value = '\\xc1676172'::bytea \
         WHERE name = 'visits' AND sid = {}",
        sid_of(&sid)
    ));
    let (s, _) = request(&manager, &cookie(&sid), |_| {})
        .await
        .expect("loads");
    assert!(!s.fresh());
    assert_eq!(s.get(NAME), "ada");
    assert_eq!(s.get(VISITS), 0, "the field's default");

    // Unreadable metadata or another format version: absent.
    for damage in [
        "created_at = -1",
        "last_access = -5",
        "idle_timeout_ms = -1800000",
        "absolute_deadline = -1",
        "version = 99",
    ] {
        let sid = saved("bob").await;
        let row = sid_of(&sid);
        server.psql(&format!(
            "UPDATE \"{table}\" SET {damage} WHERE sid = {row}"
        ));
        let (s, _) = request(&manager, &cookie(&sid), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{damage}: no error, got {e:?}"));
        assert!(s.fresh(), "{damage}: treated as absent");
        assert_ne!(
            s.id().as_str(),
            sid,
            "{damage}: a new id, never the old one"
        );
        assert!(
            matches!(
                store.load(&SessionId::parse(&sid).expect("id"), 1).await,
                Ok(Loaded::Absent)
            ),
            "{damage}: the store answers absent"
        );
        assert_eq!(
            server.psql(&format!(
                "SELECT count(*) FROM \"{table}\" WHERE sid = {row}"
            )),
            "1",
            "{damage}: the row is left alone (it expires and is swept)"
        );
    }

    // Nothing else was lost.
    let (s, _) = request(&manager, &cookie(&bystander), |_| {})
        .await
        .expect("loads");
    assert!(!s.fresh());
    assert_eq!(s.get(NAME), "bystander");
    assert_eq!(s.get(VISITS), 3);
}

/// The anonymous failure policy on a real outage (PostgreSQL stopped, as
/// in a crash): the request runs with a degraded session and nothing is
/// written, no cookie set or cleared; under the default policy the same
/// request fails with a store error; once the server is back the stored
/// session is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_policy_while_postgres_is_down() {
    use sessionkit::{FailurePolicy, SessionError};

    let mut server = PostgresServer::start();
    let store = quick_to_fail(&server, "anonymous")
        .sweep_interval(None)
        .connect()
        .await
        .expect("store");
    let manager = SessionManager::<Profile>::new(store);
    let (s, _) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("request");
    let sid = s.id().to_string();
    server.psql("CHECKPOINT");
    server.stop();

    let pending = manager
        .begin()
        .with_failure_policy(FailurePolicy::Anonymous);
    let session = pending
        .load(&cookie(&sid))
        .await
        .expect("degraded, not failed");
    assert!(session.degraded() && session.fresh());
    assert_eq!(session.get(NAME), "", "nothing of the stored session");
    session.set(VISITS, 9);
    let update = pending.finish(false).await.expect("finish");
    assert!(update.is_empty(), "no cookie set or cleared: {update:?}");

    // A new visitor's session cannot be saved: the response goes out
    // without a cookie instead of failing.
    let pending = manager
        .begin()
        .with_failure_policy(FailurePolicy::Anonymous);
    let session = pending.load(&TestRequest::new()).await.expect("load");
    session.set(VISITS, 1);
    assert!(pending.finish(false).await.expect("finish").is_empty());

    let error = request(&manager, &cookie(&sid), |_| {})
        .await
        .expect_err("the default policy fails");
    assert!(matches!(error, SessionError::Store(_)), "{error:?}");

    server.restart();
    let pending = manager
        .begin()
        .with_failure_policy(FailurePolicy::Anonymous);
    let session = pending.load(&cookie(&sid)).await.expect("load");
    assert!(!session.degraded());
    assert_eq!(session.get(NAME), "ada", "the session survived the outage");
    assert!(pending.finish(false).await.is_ok());
}

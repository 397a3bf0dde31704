//! Operability through the public API: each metric moves when its event
//! happens, lifecycle events reach a listener without ever holding up a
//! request, the anonymous failure policy, the circuit breaker around a
//! failing store, and store errors logged with each cause once.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use sessionkit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use sessionkit::clock::ManualClock;
use sessionkit::events::{DestroyCause, EventKind, RotationCause, SessionEvent};
use sessionkit::{Config, FailurePolicy, MemoryStore, SessionError, SessionManager};
use sessionkit_tests::acceptance::{cookie_value, request, T0};
use sessionkit_tests::support::{Profile, RecordingStore, TestRequest, NAME, VISITS};

const MIN: Duration = Duration::from_secs(60);

/// The metrics recorded since the last call: counters and gauges by value,
/// histograms by number of observations, keyed `name{label=value,…}`.
fn moved(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        #[allow(clippy::cast_precision_loss)]
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(values) => values.len() as f64,
        };
        if value != 0.0 {
            out.insert(name, value);
        }
    }
    out
}

#[track_caller]
fn has(metrics: &BTreeMap<String, f64>, key: &str, value: f64) {
    assert_eq!(metrics.get(key), Some(&value), "{key} in {metrics:#?}");
}

/// Runs `f` on a current-thread runtime with `recorder` as this thread's recorder.
fn with_recorder<F: std::future::Future<Output = ()>>(recorder: &DebuggingRecorder, f: F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(f));
}

fn cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

fn manager_with(
    store: impl sessionkit::store::SessionStore,
    clock: &ManualClock,
    config: Config,
) -> SessionManager<Profile> {
    SessionManager::builder(store)
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn renewing() -> Config {
    Config::builder()
        .auto_renew_after(10 * MIN)
        .idle_timeout(30 * MIN)
        .max_session_bytes(200_usize)
        .build()
        .unwrap()
}

#[test]
fn each_metric_moves_when_its_event_happens() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    with_recorder(&recorder, async {
        let clock = ManualClock::new(T0);
        let m = manager_with(MemoryStore::new(), &clock, renewing());

        // Created: one write, its size, its latency.
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        let got = moved(&snap);
        has(&got, "sessionkit_sessions_created_total{}", 1.0);
        has(&got, "sessionkit_commits_total{outcome=written}", 1.0);
        has(&got, "sessionkit_session_size_bytes{}", 1.0);
        has(
            &got,
            "sessionkit_store_operation_duration_seconds{operation=write,store=memory}",
            1.0,
        );

        // A read that needs no write: one load, a commit that wrote nothing.
        request(&m, &cookie(&id), |s| assert_eq!(s.get(NAME), "ada"))
            .await
            .unwrap();
        let got = moved(&snap);
        has(&got, "sessionkit_commits_total{outcome=unchanged}", 1.0);
        has(
            &got,
            "sessionkit_store_operation_duration_seconds{operation=load,store=memory}",
            1.0,
        );
        assert!(
            !got.contains_key("sessionkit_commits_total{outcome=written}"),
            "{got:#?}"
        );

        // Regenerate, then auto-renewal.
        let (_, update) = request(&m, &cookie(&id), |s| s.regenerate().unwrap())
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        has(
            &moved(&snap),
            "sessionkit_sessions_rotated_total{cause=regenerate}",
            1.0,
        );
        clock.advance(11 * MIN);
        let (_, update) = request(&m, &cookie(&id), |_| {}).await.unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        has(
            &moved(&snap),
            "sessionkit_sessions_rotated_total{cause=renew}",
            1.0,
        );

        // Too large: refused, nothing written.
        let big = "x".repeat(500);
        let error = request(&m, &cookie(&id), move |s| s.set(NAME, big.clone()))
            .await
            .unwrap_err();
        assert!(matches!(error, SessionError::TooLarge { .. }));
        has(
            &moved(&snap),
            "sessionkit_commits_total{outcome=too_large}",
            1.0,
        );

        // Emptied: the last field removed deletes the session.
        request(&m, &cookie(&id), |s| s.remove(NAME)).await.unwrap();
        let got = moved(&snap);
        has(
            &got,
            "sessionkit_sessions_destroyed_total{cause=emptied}",
            1.0,
        );
        has(&got, "sessionkit_commits_total{outcome=empty}", 1.0);

        // Destroy.
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        request(&m, &cookie(&id), |s| s.destroy()).await.unwrap();
        has(
            &moved(&snap),
            "sessionkit_sessions_destroyed_total{cause=destroy}",
            1.0,
        );

        // Expired on load, then the same id is unknown.
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 2))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        clock.advance(31 * MIN);
        request(&m, &cookie(&id), |s| assert!(s.fresh()))
            .await
            .unwrap();
        let got = moved(&snap);
        has(&got, "sessionkit_sessions_expired_on_load_total{}", 1.0);
        has(
            &got,
            "sessionkit_session_ids_rejected_total{reason=unknown}",
            1.0,
        );

        // Malformed ids, by reason; they never reach the store.
        request(&m, &cookie("short"), |_| {}).await.unwrap();
        request(&m, &cookie("aaaaaaaaaaaaaaaa!aaa"), |_| {})
            .await
            .unwrap();
        let got = moved(&snap);
        has(
            &got,
            "sessionkit_session_ids_rejected_total{reason=length}",
            1.0,
        );
        has(
            &got,
            "sessionkit_session_ids_rejected_total{reason=character}",
            1.0,
        );
        assert!(
            !got.keys().any(|k| k.contains("operation=load")),
            "{got:#?}"
        );

        // Revoked by id.
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 3))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        m.delete_by_id(&id).await.unwrap();
        has(&moved(&snap), "sessionkit_sessions_revoked_total{}", 1.0);

        // Gone: a session destroyed by a concurrent request is not revived.
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 4))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        let stale = m.load_by_id(&id).await.unwrap().unwrap();
        m.delete_by_id(&id).await.unwrap();
        stale.set(VISITS, 5);
        stale.save().await.unwrap();
        has(&moved(&snap), "sessionkit_commits_total{outcome=gone}", 1.0);
    });
}

#[test]
fn store_errors_degraded_sessions_and_the_breaker_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    with_recorder(&recorder, async {
        let clock = ManualClock::new(T0);
        let store = RecordingStore::new(MemoryStore::new());
        let m = manager_with(store.clone(), &clock, Config::default());
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
            .await
            .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        moved(&snap);

        store.set_failing(true);
        let error = request(&m, &cookie(&id), |_| {}).await.unwrap_err();
        assert!(matches!(error, SessionError::Store(_)));
        has(
            &moved(&snap),
            "sessionkit_store_errors_total{kind=unavailable,operation=load,store=memory}",
            1.0,
        );

        // Anonymous: the request runs with a degraded session, nothing is
        // written, no id is sent or cleared.
        let pending = m.begin().with_failure_policy(FailurePolicy::Anonymous);
        let session = pending.load(&cookie(&id)).await.unwrap();
        assert!(session.degraded() && session.fresh());
        session.set(VISITS, 9);
        let update = pending.finish(false).await.unwrap();
        assert!(update.is_empty(), "{update:?}");
        let got = moved(&snap);
        has(&got, "sessionkit_sessions_degraded_total{}", 1.0);
        has(&got, "sessionkit_commits_total{outcome=discarded}", 1.0);
        assert!(
            !got.keys().any(|k| k.contains("operation=write")),
            "{got:#?}"
        );

        // Anonymous, failing at the save: the response goes out unchanged.
        let pending = m.begin().with_failure_policy(FailurePolicy::Anonymous);
        let session = pending.load(&TestRequest::new()).await.unwrap();
        assert!(
            !session.degraded(),
            "no id: the store was not needed to load"
        );
        session.set(VISITS, 3);
        assert!(pending.finish(false).await.unwrap().is_empty());
        // Under the default policy the same request fails.
        let error = request(&m, &TestRequest::new(), |s| s.set(VISITS, 3))
            .await
            .unwrap_err();
        assert!(matches!(error, SessionError::Store(_)));
        moved(&snap);

        // The breaker: two failures open it; then it fails fast.
        let breaker = CircuitBreaker::with_config(
            store.clone(),
            BreakerConfig::default()
                .with_failure_threshold(2)
                .with_cool_down(Duration::from_secs(60)),
        );
        let b = manager_with(breaker.clone(), &clock, Config::default());
        for _ in 0..2 {
            request(&b, &cookie(&id), |_| {}).await.unwrap_err();
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let calls = store.take_calls().len();
        let error = request(&b, &cookie(&id), |_| {}).await.unwrap_err();
        let SessionError::Store(error) = error else {
            panic!("{error:?}")
        };
        assert!(error.is_circuit_open());
        assert_eq!(
            store.take_calls().len(),
            0,
            "the store was not asked ({calls} before)"
        );
        let got = moved(&snap);
        has(
            &got,
            "sessionkit_circuit_breaker_state{state=open,store=memory}",
            1.0,
        );
        has(
            &got,
            "sessionkit_circuit_breaker_transitions_total{state=open,store=memory}",
            1.0,
        );
        has(
            &got,
            "sessionkit_circuit_breaker_rejected_total{store=memory}",
            1.0,
        );
        has(
            &got,
            "sessionkit_store_errors_total{kind=circuit_open,operation=load,store=memory}",
            1.0,
        );
        has(
            &got,
            "sessionkit_store_errors_total{kind=unavailable,operation=load,store=memory}",
            2.0,
        );
    });
}

#[test]
fn no_label_carries_an_id_or_a_value() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let mut ids = Vec::new();
    with_recorder(&recorder, async {
        let clock = ManualClock::new(T0);
        let m = manager_with(MemoryStore::new(), &clock, renewing());
        let (_, update) = request(&m, &TestRequest::new(), |s| {
            s.set(NAME, "secret-name".into())
        })
        .await
        .unwrap();
        let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
        request(&m, &cookie(&id), |s| s.regenerate().unwrap())
            .await
            .unwrap();
        m.delete_by_id(&id).await.unwrap();
        ids.push(id);
    });
    for (key, _, _, _) in snap.snapshot().into_vec() {
        for label in key.key().labels() {
            for id in &ids {
                assert!(!label.value().contains(id.as_str()));
            }
            assert!(!label.value().contains("secret"));
            assert!(label.value().len() < 20, "{label:?}");
        }
    }
}

fn events_manager(
    store: impl sessionkit::store::SessionStore,
    clock: &ManualClock,
    capacity: usize,
    listener: impl FnMut(SessionEvent<Profile>) + Send + 'static,
) -> SessionManager<Profile> {
    SessionManager::builder(store)
        .config(renewing())
        .clock(clock.clone())
        .on_event_with_capacity(listener, capacity)
        .build()
        .unwrap()
}

fn next(rx: &mpsc::Receiver<SessionEvent<Profile>>) -> SessionEvent<Profile> {
    rx.recv_timeout(Duration::from_secs(10)).expect("an event")
}

#[tokio::test]
async fn lifecycle_events_carry_a_fingerprint_and_a_snapshot() {
    let (tx, rx) = mpsc::channel();
    let clock = ManualClock::new(T0);
    let store = RecordingStore::new(MemoryStore::new());
    let m = events_manager(store.clone(), &clock, 64, move |e| {
        let _ = tx.send(e);
    });

    let (session, update) = request(&m, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .unwrap();
    let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
    let created = next(&rx);
    assert_eq!(created.kind, EventKind::Created);
    assert_eq!(created.session, session.id().fingerprint());
    assert_eq!(created.snapshot.as_ref().unwrap().name, "ada");
    assert_eq!(created.at_ms, T0);
    assert!(!format!("{created:?}").contains(&id), "no id in an event");

    let old = session.id().fingerprint();
    let (session, update) = request(&m, &cookie(&id), |s| s.regenerate().unwrap())
        .await
        .unwrap();
    let id = cookie_value(update.set_cookie.as_deref().unwrap()).to_owned();
    let rotated = next(&rx);
    assert_eq!(
        rotated.kind,
        EventKind::Rotated {
            cause: RotationCause::Regenerate,
            previous: old
        }
    );
    assert_eq!(rotated.session, session.id().fingerprint());
    assert_eq!(rotated.snapshot.unwrap().name, "ada");

    clock.advance(31 * MIN);
    request(&m, &cookie(&id), |_| {}).await.unwrap();
    let expired = next(&rx);
    assert_eq!(expired.kind, EventKind::ExpiredOnLoad);
    assert_eq!(expired.snapshot.unwrap().name, "ada", "the data it held");

    let (session, _) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    next(&rx);
    let fp = session.id().fingerprint();
    request(&m, &cookie(session.id().as_str()), |s| s.destroy())
        .await
        .unwrap();
    let destroyed = next(&rx);
    assert_eq!(
        destroyed.kind,
        EventKind::Destroyed {
            cause: DestroyCause::Destroy
        }
    );
    assert_eq!(destroyed.session, fp);
    assert!(destroyed.snapshot.is_none());

    let (session, _) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
        .await
        .unwrap();
    next(&rx);
    m.delete_by_id(session.id().as_str()).await.unwrap();
    assert_eq!(next(&rx).kind, EventKind::Revoked);

    store.set_failing(true);
    request(&m, &cookie(session.id().as_str()), |_| {})
        .await
        .unwrap_err();
    let failed = next(&rx);
    assert!(
        matches!(
            failed.kind,
            EventKind::StoreError {
                kind: "unavailable",
                ..
            }
        ),
        "{failed:?}"
    );
    assert_eq!(failed.session, session.id().fingerprint());
}

#[tokio::test]
async fn a_slow_listener_never_delays_a_request_and_drops_are_counted() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let clock = ManualClock::new(T0);
    // The listener blocks on its first event until released.
    let m = events_manager(MemoryStore::new(), &clock, 4, move |_| {
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
    });
    let started = Instant::now();
    for _ in 0..50 {
        request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited for the listener: {:?}",
        started.elapsed()
    );
    let stats = m.event_stats().unwrap();
    // One event in the listener's hands, four queued, the rest dropped.
    assert!(stats.dropped >= 45, "{stats:?}");
    for _ in 0..50 {
        let _ = release_tx.send(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.event_stats().unwrap().delivered + m.event_stats().unwrap().dropped < 50 {
        assert!(Instant::now() < deadline, "{:?}", m.event_stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn a_panicking_listener_never_fails_a_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let clock = ManualClock::new(T0);
    let m = events_manager(MemoryStore::new(), &clock, 64, move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        panic!("listener bug");
    });
    for _ in 0..3 {
        let (_, update) = request(&m, &TestRequest::new(), |s| s.set(VISITS, 1))
            .await
            .unwrap();
        assert!(update.set_cookie.is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.event_stats().unwrap().panicked < 3 {
        assert!(Instant::now() < deadline, "{:?}", m.event_stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "still called after a panic"
    );
}

//! The gateways' operability, on both gateway examples: `GET /metrics`, and
//! `/public/*` staying up while the store is down, a failing test store or a
//! real PostgreSQL stopped (request spans: `gateway_spans.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use common::{
    assert_alike, both, manager_for, start_full, start_with, Browser, Kind, Step, Transcript,
};
use metrics_exporter_prometheus::PrometheusHandle;
use sessionkit::id::SessionId;
use sessionkit::MemoryStore;
use sessionkit_examples::gateway::{
    install_prometheus, store_from_env_values, GatewayConfig, METRICS_CONTENT_TYPE,
};
use sessionkit_tests::postgres_server::PostgresServer;
use sessionkit_tests::support::RecordingStore;

both!(
    metrics_are_served_in_the_prometheus_text_format_without_ids,
    public_pages_stay_up_while_the_store_is_down,
    public_pages_stay_up_while_postgres_is_down,
);

/// The process-wide Prometheus recorder (installed once for this test binary).
/// While the store is down: a public page answers 200 with an anonymous
/// session (no id sent or cleared, nothing forwarded downstream), and a
/// page that needs the session fails with 503.
async fn assert_public_pages_anonymous(browser: &mut Browser) {
    let res = browser.get("/public/a").await;
    assert_eq!(res.status, StatusCode::OK, "public pages stay up");
    assert!(res.session_cookie().is_none(), "the client keeps its id");
    assert!(res.header("x-session-id").is_none());
    let seen = res.json();
    assert!(
        seen["headers"].get("x-user-id").is_none(),
        "anonymous downstream: {seen}"
    );
    assert_eq!(
        browser.get("/dashboard/x").await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "pages that need the session fail"
    );
}

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| install_prometheus().unwrap()).clone()
}

async fn metrics_are_served_in_the_prometheus_text_format_without_ids(kind: Kind) {
    let config = GatewayConfig::default();
    let manager = manager_for(&config, MemoryStore::new());
    let servers = start_full(kind, manager, &config.headers, Some(prometheus())).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    assert_eq!(browser.get("/").await.body, "Visits: 2");
    let id = browser.sid();

    let res = browser.get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert!(res.session_cookie().is_none());
    let text = res.body;
    for needle in [
        "# HELP sessionkit_sessions_created_total",
        "# TYPE sessionkit_sessions_created_total counter",
        "sessionkit_commits_total{outcome=\"written\"}",
        "sessionkit_store_operation_duration_seconds_bucket{operation=\"write\",store=\"memory\",le=\"0.00005\"}",
        "sessionkit_session_size_bytes_bucket{le=\"64\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    assert!(!text.contains(&id), "an id in /metrics");
    assert!(!text.contains(&SessionId::parse(&id).unwrap().fingerprint().to_string()));
    servers.stop().await;
}

async fn public_pages_stay_up_while_the_store_is_down(kind: Kind) {
    let config = GatewayConfig::default();
    let store = RecordingStore::new(MemoryStore::new());
    let servers = start_with(kind, manager_for(&config, store.clone()), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.login().await.status, StatusCode::OK);
    let sid = browser.sid();
    let res = browser.get("/public/a").await;
    assert_eq!(res.json()["headers"]["x-user-id"], "1", "{}", res.body);

    store.set_failing(true);
    assert_public_pages_anonymous(&mut browser).await;
    assert_eq!(
        browser.get("/cart").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(browser.sid(), sid);

    store.set_failing(false);
    let res = browser.get("/public/a").await;
    assert_eq!(
        res.json()["headers"]["x-user-id"],
        "1",
        "the session is back: {}",
        res.body
    );
    servers.stop().await;
}

/// The anonymous failure policy of `/public/*` on a real outage: the
/// gateway on PostgreSQL (`DATABASE_URL`), PostgreSQL stopped as in a
/// crash: public pages are served anonymously (no cookie change, no
/// mapped headers), pages that need the session answer 503; PostgreSQL
/// back, the same gateway serves the signed-in session again.
async fn public_pages_stay_up_while_postgres_is_down(kind: Kind) {
    let mut pg = PostgresServer::start();
    let store = store_from_env_values(None, Some(&pg.url()))
        .await
        .expect("DATABASE_URL picks PostgreSQL");
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.login().await.status, StatusCode::OK);
    let sid = browser.sid();
    let res = browser.get("/public/a").await;
    assert_eq!(res.json()["headers"]["x-user-id"], "1", "{}", res.body);

    pg.psql("CHECKPOINT");
    pg.stop();
    for _ in 0..3 {
        assert_public_pages_anonymous(&mut browser).await;
    }
    assert_eq!(browser.sid(), sid);

    pg.restart();
    // The breaker lets a probe through after its cool-down: poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let res = browser.get("/public/a").await;
        if res.json()["headers"]["x-user-id"] == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not come back: {}",
            res.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(browser.sid(), sid, "the same session");
    servers.stop().await;
}

/// Logged in, then every kind of route while the store fails, then back:
/// every answer normalized.
async fn outage_transcript(kind: Kind) -> Transcript {
    let config = GatewayConfig::default();
    let store = RecordingStore::new(MemoryStore::new());
    let servers = start_with(kind, manager_for(&config, store.clone()), &config.headers).await;
    let mut browser = Browser::new(&servers);
    // `Connection` is left out: when a handler fails before reading the
    // request body (`POST /cart/add` while the store is down), actix-web
    // closes the connection (`connection: close`) where hyper drains the
    // body and keeps it open. Connection management, not the contract.
    let mut transcript = Transcript::ignoring(&["connection"]);
    let login: [Step<'_>; 1] = [(
        "POST",
        "/login",
        &[],
        Some(&[("email", "user@example.com"), ("password", "password")]),
    )];
    transcript.run(&mut browser, &login).await;
    store.set_failing(true);
    let down: [Step<'_>; 9] = [
        (
            "GET",
            "/public/docs",
            &[("X-User-Id", "9"), ("X-Tag", "a")],
            None,
        ),
        ("GET", "/dashboard/stats", &[], None),
        ("GET", "/", &[], None),
        ("GET", "/cart", &[], None),
        ("POST", "/cart/add", &[], Some(&[("item_id", "42")])),
        ("GET", "/api/data?session_id=x", &[], None),
        ("POST", "/logout", &[], None),
        ("GET", "/nowhere", &[], None),
        ("GET", "/public/../dashboard", &[], None),
    ];
    transcript.run(&mut browser, &down).await;
    store.set_failing(false);
    let back: [Step<'_>; 2] = [
        ("GET", "/public/docs", &[], None),
        ("GET", "/cart", &[], None),
    ];
    transcript.run(&mut browser, &back).await;
    servers.stop().await;
    transcript
}

/// While the store is down a client still cannot tell the two gateway
/// examples apart.
#[actix_web::test]
async fn both_gateways_answer_alike_while_the_store_is_down() {
    let actix = outage_transcript(Kind::Actix).await;
    let axum = outage_transcript(Kind::Axum).await;
    assert_alike(&actix, &axum);
}

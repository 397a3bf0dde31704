//! The gateway examples end to end, the actix one and the axum one, with
//! the same tests: real servers on 127.0.0.1 (port 0), an `awc` client
//! keeping cookies like a browser (the harness: `common/mod.rs`).
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use common::{
    assert_alike, both, handles_of, manager_for, start, start_with, Browser, Kind, Step, Transcript,
};
use sessionkit::clock::ManualClock;
use sessionkit::{HeaderMapConfig, MemoryStore, SessionManager};
use sessionkit_examples::gateway::{
    store_for, store_from_env_values, Gateway, GatewayConfig, GatewayError, GatewaySession,
};
use sessionkit_examples::gateway_axum;
use sessionkit_tests::support::RecordingStore;

both!(
    visits_count_with_the_reference_cookie_attributes,
    cart_survives_login_and_login_rotates_the_id,
    dashboard_needs_login_and_forwards_mapped_headers_only,
    public_routes_forward_without_login_and_without_spoofed_headers,
    api_data_counts_and_reports_the_id_by_every_lookup,
    logout_clears_the_session_and_the_cookie,
    disable_session_forward_keeps_the_token_from_downstream,
    auto_renew_rotates_the_id_behind_the_gateway,
    gateway_on_redis_from_redis_url,
    gateway_on_postgres_from_database_url,
    postgres_killed_is_a_fast_503_then_recovers,
    config_errors_are_start_up_errors,
    dot_segments_are_refused_before_routing_and_never_reach_downstream,
    backslashes_are_refused_as_sent_on_the_wire,
    a_non_ascii_cookie_beside_the_session_cookie_keeps_the_session,
    unknown_paths_are_404_without_touching_the_session,
    per_user_routes_need_a_login,
    a_user_lists_and_revokes_their_sessions,
    max_sessions_per_user_comes_from_the_yaml,
);

async fn visits_count_with_the_reference_cookie_attributes(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    let first = browser.get("/").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "Visits: 1");
    let cookie = first.session_cookie().unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.same_site(), Some(actix_web::cookie::SameSite::Lax));
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::hours(2))
    );
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(first.header("x-session-id"), Some(cookie.value()));
    assert_eq!(browser.get("/").await.body, "Visits: 2");
    servers.stop().await;
}

async fn cart_survives_login_and_login_rotates_the_id(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(
        browser
            .post("/cart/add", &[("item_id", "apple")])
            .await
            .json(),
        serde_json::json!({"items": 1})
    );
    assert_eq!(
        browser
            .post("/cart/add", &[("item_id", "pear")])
            .await
            .json(),
        serde_json::json!({"items": 2})
    );
    let before = browser.sid();

    let wrong = browser
        .post(
            "/login",
            &[("email", "user@example.com"), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        serde_json::json!({"error": "Invalid credentials"})
    );
    assert_eq!(browser.sid(), before);

    let ok = browser.login().await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json(), serde_json::json!({"status": "logged in"}));
    let after = browser.sid();
    assert_ne!(after, before);
    assert_eq!(
        browser.get("/cart").await.json(),
        serde_json::json!({"items": ["apple", "pear"]})
    );

    // The pre-login id is worthless now (fixation defence).
    let mut attacker = Browser::new(&servers);
    attacker.jar.insert("session_id".into(), before);
    assert_eq!(
        attacker.get("/cart").await.json(),
        serde_json::json!({"items": []})
    );
    assert_eq!(
        attacker.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    servers.stop().await;
}

async fn dashboard_needs_login_and_forwards_mapped_headers_only(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    let denied = browser.get("/dashboard").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);

    browser.login().await;
    let res = browser
        .send(
            "GET",
            "/dashboard/stats/today?range=7d",
            &[
                // Values that cannot occur in the session id (on the cookie line).
                ("X-User-Id", "spoofed"),
                ("x_user_id", "spoofed"),
                ("Authorization", "Bearer forged"),
                ("X-Tag", "a"),
                ("X-Tag", "b"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let seen = res.json();
    assert_eq!(seen["path"], "/dashboard/stats/today");
    let headers = seen["headers"].as_object().unwrap();
    assert_eq!(headers["x-user-id"], "1");
    assert_eq!(headers["authorization"], "Bearer demo-token-1");
    assert_eq!(headers["x-tag"], "a, b");
    assert!(!headers.contains_key("x_user_id"), "{headers:?}");
    assert!(!res.body.contains("spoofed") && !res.body.contains("forged"));

    let plain = browser.get("/dashboard").await.json();
    assert_eq!(plain["path"], "/dashboard");
    servers.stop().await;
}

async fn public_routes_forward_without_login_and_without_spoofed_headers(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    let res = browser
        .send(
            "GET",
            "/public/docs/intro",
            &[("X-User-Id", "999"), ("X_USER_ID", "999")],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let seen = res.json();
    assert_eq!(seen["path"], "/public/docs/intro");
    let headers = seen["headers"].as_object().unwrap();
    assert!(!headers.contains_key("x-user-id"), "{headers:?}");
    assert!(!headers.contains_key("x_user_id"), "{headers:?}");
    assert!(!headers.contains_key("authorization"));
    // Nothing was stored: no cookie for an anonymous visit.
    assert!(res.session_cookie().is_none());
    servers.stop().await;
}

async fn api_data_counts_and_reports_the_id_by_every_lookup(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    let first = browser.get("/api/data").await.json();
    assert_eq!(first["calls"], 1);
    assert_eq!(first["session_id"], browser.sid());
    let sid = browser.sid();

    // Header lookup, no cookies.
    let mut api = Browser::new(&servers);
    let res = api
        .send("GET", "/api/data", &[("X-Session-ID", sid.as_str())], None)
        .await;
    assert_eq!(res.json()["calls"], 2);
    // Query lookup: read-only, nothing written back.
    let mut link = Browser::new(&servers);
    let res = link.get(&format!("/api/data?session_id={sid}")).await;
    assert_eq!(res.json()["calls"], 3);
    assert!(res.session_cookie().is_none());
    assert!(res.header("x-session-id").is_none());
    servers.stop().await;
}

async fn logout_clears_the_session_and_the_cookie(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    browser.login().await;
    let sid = browser.sid();
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);
    let res = browser.send("POST", "/logout", &[], None).await;
    assert_eq!(res.json(), serde_json::json!({"status": "logged out"}));
    let removal = res.session_cookie().unwrap();
    assert_eq!(removal.value(), "");
    assert_eq!(removal.path(), Some("/"));
    assert!(browser.jar.is_empty());
    assert_eq!(
        browser.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut replay = Browser::new(&servers);
    replay.jar.insert("session_id".into(), sid);
    assert_eq!(
        replay.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    servers.stop().await;
}

const FORWARD_OFF: &str = r#"
middlewares:
  LoadSessionMiddleware:
    use: plugins.session.middlewares.LoadSessionMiddleware
    config:
      cookieHTTPOnly: true
      cookieSecure: false
      cookieSameSite: "Lax"
      cookieExpiration: 2h
      autoRenewAfter: 30m
      disableSessionForward: true
  MapSessionToHeaderMiddleware:
    use: plugins.session.middlewares.MapSessionToHeaderMiddleware
    config:
      headers:
        Authorization: authorization
        X-User-Id: user_id
"#;

async fn disable_session_forward_keeps_the_token_from_downstream(kind: Kind) {
    let config = GatewayConfig::from_yaml(FORWARD_OFF).unwrap();
    assert!(config.session.disable_session_forward);
    let servers = start(kind, config).await;
    let mut browser = Browser::new(&servers);
    browser.jar.insert("theme".into(), "dark".into());
    browser.login().await;
    let sid = browser.sid();

    let res = browser.get("/dashboard").await;
    let seen = res.json();
    let headers = seen["headers"].as_object().unwrap();
    assert_eq!(headers["x-user-id"], "1");
    assert_eq!(headers["cookie"], "theme=dark");
    assert!(!res.body.contains(&sid), "{}", res.body);

    // Also when the id comes as a header.
    let mut api = Browser::new(&servers);
    let res = api
        .send("GET", "/dashboard", &[("X-Session-ID", sid.as_str())], None)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(!res.body.contains(&sid), "{}", res.body);
    assert!(!res.body.contains("x-session-id"), "{}", res.body);
    servers.stop().await;
}

async fn auto_renew_rotates_the_id_behind_the_gateway(kind: Kind) {
    let clock = ManualClock::new(1_700_000_000_000);
    let config = GatewayConfig::default();
    let manager = SessionManager::<GatewaySession>::builder(MemoryStore::new())
        .config(config.session.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let servers = start_with(kind, manager, &config.headers).await;
    let mut browser = Browser::new(&servers);
    browser.login().await;
    let first = browser.sid();
    clock.advance(Duration::from_secs(29 * 60));
    let res = browser.get("/dashboard").await;
    let refreshed = res
        .session_cookie()
        .expect("idle deadline refreshed, cookie re-sent");
    assert_eq!(refreshed.value(), first, "not renewed yet");
    clock.advance(Duration::from_secs(2 * 60));
    let res = browser.get("/dashboard").await;
    assert_eq!(res.json()["headers"]["x-user-id"], "1");
    let second = res.session_cookie().expect("renewed").value().to_owned();
    assert_ne!(second, first);
    assert_eq!(browser.sid(), second);
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);
    servers.stop().await;
}

async fn config_errors_are_start_up_errors(kind: Kind) {
    let unknown_field = FORWARD_OFF.replace("X-User-Id: user_id", "X-Role: role");
    let config = GatewayConfig::from_yaml(&unknown_field).unwrap();
    let error = match kind {
        Kind::Actix => Gateway::new(&config, MemoryStore::new(), "http://127.0.0.1:1").unwrap_err(),
        Kind::Axum => gateway_axum::Gateway::new(&config, MemoryStore::new(), "http://127.0.0.1:1")
            .unwrap_err(),
    };
    assert!(matches!(error, GatewayError::Headers(_)), "{error}");
    // The cause is the error's source, printed once by ErrorChain.
    let chain = sessionkit::ErrorChain(&error).to_string();
    assert!(chain.contains("role"), "{chain}");
    assert!(!error.to_string().contains("role"), "{error}");

    let unknown_key = FORWARD_OFF.replace("cookieSecure: false", "cookieSecured: false");
    assert!(matches!(
        GatewayConfig::from_yaml(&unknown_key),
        Err(GatewayError::Yaml(_))
    ));

    let invalid = FORWARD_OFF.replace("cookieExpiration: 2h", "cookieExpiration: 0s");
    assert!(matches!(
        GatewayConfig::from_yaml(&invalid),
        Err(GatewayError::Config(_))
    ));

    assert!(matches!(
        store_for(Some("http://127.0.0.1:6379")),
        Err(GatewayError::Redis(_))
    ));
    assert!(store_for(Some("redis://127.0.0.1:6379")).is_ok());
    assert!(store_for(Some("redis://127.0.0.1:7000, redis://127.0.0.1:7001")).is_ok());
    assert!(store_for(None).is_ok());
}

#[test]
fn default_config_is_the_reference_example() {
    let config = GatewayConfig::default();
    let s = &config.session;
    assert!(s.cookie_http_only && !s.cookie_secure);
    assert_eq!(s.cookie_same_site, sessionkit::SameSite::Lax);
    assert_eq!(s.cookie_expiration, Duration::from_secs(7200));
    assert!(!s.disable_auto_renew);
    assert_eq!(s.auto_renew_after, Duration::from_secs(1800));
    assert!(!s.disable_session_forward);
    assert_eq!(
        s.key_lookup.to_string(),
        "cookie:session_id,header:X-Session-ID,query:session_id"
    );
    assert_eq!(
        config.headers,
        HeaderMapConfig::new([("Authorization", "authorization"), ("X-User-Id", "user_id")])
    );
}

async fn gateway_on_redis_from_redis_url(kind: Kind) {
    let redis = sessionkit_tests::redis_server::RedisServer::start();
    let store: Arc<dyn sessionkit::store::DynSessionStore> = store_for(Some(&redis.url())).unwrap();
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    assert_eq!(browser.get("/").await.body, "Visits: 2");
    browser.post("/cart/add", &[("item_id", "42")]).await;
    let before = browser.sid();
    assert_eq!(browser.login().await.status, StatusCode::OK);
    assert_ne!(browser.sid(), before, "login rotates the id");
    let dash = browser.get("/dashboard").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert_eq!(dash.json()["headers"]["x-user-id"], "1");
    assert_eq!(browser.get("/cart").await.json()["items"][0], "42");
    // The sessions really are in Redis: one hash per session, key hashed,
    // and the user's index (a hashed principal, no user id in clear).
    let keys = redis.cli(&["--scan", "--pattern", "sessionkit:*"]);
    let (index, sessions): (Vec<&str>, Vec<&str>) = keys
        .lines()
        .partition(|k| k.starts_with("sessionkit:principal:"));
    assert_eq!((index.len(), sessions.len()), (1, 1), "{keys}");
    assert!(!keys.contains(&browser.sid()));
    assert_eq!(redis.cli(&["TYPE", index[0]]), "zset");
    // Sessions per user on Redis: a second device, listed, then logged out everywhere.
    let mut other = Browser::new(&servers);
    other.login().await;
    assert_eq!(handles_of(&browser.get("/sessions").await).len(), 2);
    let everywhere = other.post("/logout-everywhere", &[]).await;
    assert_eq!(everywhere.json(), serde_json::json!({"revoked": 2}));
    assert_eq!(
        browser.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    servers.stop().await;
}

async fn gateway_on_postgres_from_database_url(kind: Kind) {
    let pg = sessionkit_tests::postgres_server::PostgresServer::start();
    let store = store_from_env_values(None, Some(&pg.url()))
        .await
        .expect("DATABASE_URL picks PostgreSQL");
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    assert_eq!(browser.get("/").await.body, "Visits: 2");
    browser.post("/cart/add", &[("item_id", "42")]).await;
    let before = browser.sid();
    assert_eq!(browser.login().await.status, StatusCode::OK);
    assert_ne!(browser.sid(), before, "login rotates the id");
    let dash = browser.get("/dashboard").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert_eq!(dash.json()["headers"]["x-user-id"], "1");
    assert_eq!(browser.get("/cart").await.json()["items"][0], "42");
    // The session really is in PostgreSQL, under its hash, indexed by a
    // hashed principal; no id in any row.
    let handle = sessionkit::PostgresStore::key_for(
        &sessionkit::id::SessionId::parse(&browser.sid()).expect("id"),
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM sessionkit WHERE handle = '{handle}' AND principal IS NOT NULL \
             AND (SELECT count(*) FROM sessionkit) = 1"
        )),
        "1"
    );
    assert!(!pg
        .psql("SELECT string_agg(handle || coalesce(principal, ''), ',') FROM sessionkit")
        .contains(&browser.sid()));
    let mut other = Browser::new(&servers);
    other.login().await;
    assert_eq!(handles_of(&browser.get("/sessions").await).len(), 2);
    let everywhere = other.post("/logout-everywhere", &[]).await;
    assert_eq!(everywhere.json(), serde_json::json!({"revoked": 2}));
    assert_eq!(
        browser.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    servers.stop().await;
}

/// PostgreSQL killed under the gateway: requests get a 503 at once (store
/// errors, then the open circuit breaker), `/public/*` stays anonymous, and
/// once the server is back the same gateway serves the stored session.
async fn postgres_killed_is_a_fast_503_then_recovers(kind: Kind) {
    let mut pg = sessionkit_tests::postgres_server::PostgresServer::start();
    let store = store_from_env_values(None, Some(&pg.url()))
        .await
        .expect("DATABASE_URL picks PostgreSQL");
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    pg.psql("CHECKPOINT");
    pg.stop();
    for _ in 0..8 {
        let started = std::time::Instant::now();
        let answer = browser.get("/").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fails fast: {:?}",
            started.elapsed()
        );
    }
    pg.restart();
    // The breaker lets a probe through after its cool-down (1 s): poll,
    // bounded, until the store answers again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let back = loop {
        let answer = browser.get("/").await;
        if answer.status == StatusCode::OK {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not recover: {}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back.body, "Visits: 2", "the session survived the outage");
    servers.stop().await;
}

#[tokio::test]
async fn both_store_urls_are_a_start_up_error() {
    let both = store_from_env_values(
        Some("redis://127.0.0.1:6379"),
        Some("postgres://postgres@127.0.0.1:5432/postgres"),
    )
    .await;
    let Err(error) = both else {
        panic!("both set must be refused")
    };
    assert!(matches!(error, GatewayError::TwoStores));
    assert!(error.to_string().contains("unset one"), "{error}");
    assert!(matches!(
        store_from_env_values(Some(" "), Some("not a url")).await,
        Err(GatewayError::Postgres(_))
    ));
}

/// One scripted visit, every answer normalized.
async fn transcript(kind: Kind) -> Transcript {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    let mut transcript = Transcript::default();
    let steps: [Step<'_>; 15] = [
        ("GET", "/", &[], None),
        ("POST", "/cart/add", &[], Some(&[("item_id", "42")])),
        ("POST", "/cart/add", &[], Some(&[("nope", "1")])),
        ("GET", "/cart", &[], None),
        ("GET", "/dashboard", &[], None),
        (
            "POST",
            "/login",
            &[],
            Some(&[("email", "x"), ("password", "y")]),
        ),
        (
            "POST",
            "/login",
            &[],
            Some(&[("email", "user@example.com"), ("password", "password")]),
        ),
        (
            "GET",
            "/dashboard/stats?range=7d",
            &[("X-User-Id", "9"), ("x_user_id", "9"), ("X-Tag", "a")],
            None,
        ),
        (
            "GET",
            "/public/docs",
            &[("Authorization", "Bearer forged")],
            None,
        ),
        ("GET", "/api/data", &[], None),
        ("GET", "/nowhere", &[], None),
        // Without `Gateway::with_metrics`: 404.
        ("GET", "/metrics", &[], None),
        ("POST", "/logout", &[], None),
        ("GET", "/dashboard", &[], None),
        ("GET", "/cart", &[], None),
    ];
    transcript.run(&mut browser, &steps).await;
    servers.stop().await;
    transcript
}

/// A client cannot tell the two gateway examples apart.
#[actix_web::test]
async fn both_gateways_answer_alike() {
    let actix = transcript(Kind::Actix).await;
    let axum = transcript(Kind::Axum).await;
    assert_alike(&actix, &axum);
}

/// Paths that a downstream server could normalize onto another route.
const SMUGGLING_PATHS: [&str; 12] = [
    "/public/../dashboard/x",
    "/public/./x",
    "/public/%2e%2e/dashboard/x",
    "/public/%2E%2E/dashboard/x",
    "/public/.%2e/dashboard/x",
    "/public/%2e./dashboard/x",
    "/public/%252e%252e/dashboard/x",
    "/public/..;/dashboard/x",
    "/public/..%2fdashboard/x",
    "/public/..%5Cdashboard/x",
    "/dashboard/../public/x",
    "/public/x/..",
];

async fn dot_segments_are_refused_before_routing_and_never_reach_downstream(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut anonymous = Browser::new(&servers);
    let mut user = Browser::new(&servers);
    user.login().await;
    for path in SMUGGLING_PATHS {
        for browser in [&mut anonymous, &mut user] {
            let res = browser.get(path).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}: {}", res.body);
            assert_eq!(
                res.json(),
                serde_json::json!({"error": "Bad request"}),
                "{path}"
            );
            assert!(res.session_cookie().is_none(), "{path}");
        }
    }
    assert_eq!(servers.downstream_hits.load(Ordering::SeqCst), 0);

    // The ordinary routes answer as before.
    let res = anonymous.get("/public/x?next=../dashboard").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["path"], "/public/x");
    assert_eq!(
        anonymous.get("/dashboard/x").await.status,
        StatusCode::UNAUTHORIZED
    );
    let res = user.get("/dashboard/x").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["headers"]["x-user-id"], "1");
    assert_eq!(servers.downstream_hits.load(Ordering::SeqCst), 2);
    servers.stop().await;
}

/// `GET path` written on the socket as is (clients refuse some of these
/// paths); the status code and the body.
fn raw_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn backslashes_are_refused_as_sent_on_the_wire(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let base = servers.base.clone();
    let answers = actix_web::rt::task::spawn_blocking(move || {
        [
            raw_get(&base, "/public/..\\dashboard/x"),
            raw_get(&base, "/public\\..\\dashboard\\x"),
            raw_get(&base, "/public/../dashboard/x"),
            raw_get(&base, "/public/x"),
        ]
    })
    .await
    .unwrap();
    for (status, body) in &answers[..3] {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body, r#"{"error":"Bad request"}"#);
    }
    assert_eq!(answers[3].0, 200, "{}", answers[3].1);
    assert_eq!(servers.downstream_hits.load(Ordering::SeqCst), 1);
    servers.stop().await;
}

async fn a_non_ascii_cookie_beside_the_session_cookie_keeps_the_session(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    // A script on the site set `theme=café`: its UTF-8 bytes travel in the
    // same Cookie header as the session id.
    let cookie = format!("theme=café; session_id={}", browser.sid());
    let mut res = awc::Client::default()
        .get(format!("{}/", servers.base))
        .insert_header((
            "Cookie",
            awc::http::header::HeaderValue::from_bytes(cookie.as_bytes()).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(body, "Visits: 2");
    servers.stop().await;
}

async fn unknown_paths_are_404_without_touching_the_session(kind: Kind) {
    let config = GatewayConfig::default();
    let store = RecordingStore::new(MemoryStore::new());
    let servers = start_with(kind, manager_for(&config, store.clone()), &config.headers).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.get("/").await.body, "Visits: 1");
    store.take_calls();
    for path in [
        "/nowhere",
        "/dashboardx",
        "/publicx",
        "/cart/x",
        "/metrics/x",
    ] {
        let res = browser.get(path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.body);
        assert_eq!(res.body, "", "{path}");
        assert!(res.session_cookie().is_none(), "{path}");
    }
    let calls = store.take_calls();
    assert!(calls.is_empty(), "the session was loaded: {calls:?}");
    // Also while the store is down: nothing asks for it.
    store.set_failing(true);
    assert_eq!(browser.get("/nowhere").await.status, StatusCode::NOT_FOUND);
    servers.stop().await;
}

/// The session ids a browser holds never appear in a listing.
fn no_ids_in(body: &str, browsers: &[&Browser]) {
    for browser in browsers {
        let sid = browser.sid();
        assert!(
            sid.is_empty() || !body.contains(&sid),
            "a session id leaked: {body}"
        );
    }
}

async fn per_user_routes_need_a_login(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let mut browser = Browser::new(&servers);
    browser.get("/").await; // a session, not logged in
    for (method, path) in [
        ("GET", "/sessions"),
        ("POST", "/sessions/revoke"),
        ("POST", "/logout-others"),
        ("POST", "/logout-everywhere"),
    ] {
        let form: &[(&str, &str)] = &[("handle", "x")];
        let answer = browser
            .send(method, path, &[], (method == "POST").then_some(form))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(answer.json(), serde_json::json!({"error": "Unauthorized"}));
    }
    servers.stop().await;
}

async fn a_user_lists_and_revokes_their_sessions(kind: Kind) {
    let servers = start(kind, GatewayConfig::default()).await;
    let (mut phone, mut laptop, mut tablet) = (
        Browser::new(&servers),
        Browser::new(&servers),
        Browser::new(&servers),
    );
    for browser in [&mut phone, &mut laptop, &mut tablet] {
        assert_eq!(browser.login().await.status, StatusCode::OK);
    }
    let listing = laptop.get("/sessions").await;
    assert_eq!(listing.status, StatusCode::OK);
    no_ids_in(&listing.body, &[&phone, &laptop, &tablet]);
    let sessions = listing.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    for s in &sessions {
        assert_eq!(s["handle"].as_str().unwrap().len(), 43);
        assert!(
            s["created_at"].as_u64().unwrap() > 1_700_000_000_000,
            "unix ms"
        );
        assert!(s["last_access"].as_u64().unwrap() >= s["created_at"].as_u64().unwrap());
    }
    assert_eq!(
        handles_of(&listing)
            .iter()
            .filter(|(_, current)| *current)
            .count(),
        1
    );

    // The laptop revokes the tablet by its handle (found in the tablet's own listing).
    let tablet_handle = handles_of(&tablet.get("/sessions").await)
        .into_iter()
        .find_map(|(handle, current)| current.then_some(handle))
        .unwrap();
    let revoked = laptop
        .post("/sessions/revoke", &[("handle", &tablet_handle)])
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.json(), serde_json::json!({"revoked": true}));
    assert_eq!(
        tablet.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED,
        "immediately"
    );
    let again = laptop
        .post("/sessions/revoke", &[("handle", &tablet_handle)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.json(), serde_json::json!({"error": "Not found"}));
    let garbage = laptop
        .post("/sessions/revoke", &[("handle", "not-a-handle")])
        .await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
    assert_eq!(handles_of(&laptop.get("/sessions").await).len(), 2);

    // The phone logs out every other session.
    let others = phone.post("/logout-others", &[]).await;
    assert_eq!(others.json(), serde_json::json!({"revoked": 1}));
    assert_eq!(
        laptop.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(phone.get("/dashboard").await.status, StatusCode::OK);
    let left = handles_of(&phone.get("/sessions").await);
    assert_eq!(left.len(), 1);
    assert!(left[0].1, "only the phone's own session is left");

    // Logged in again on the laptop, then out everywhere from the phone.
    laptop.login().await;
    let everywhere = phone.post("/logout-everywhere", &[]).await;
    assert_eq!(everywhere.status, StatusCode::OK);
    assert_eq!(everywhere.json(), serde_json::json!({"revoked": 2}));
    let cleared = everywhere.session_cookie().expect("the cookie is cleared");
    assert_eq!(cleared.value(), "");
    assert!(phone.sid().is_empty());
    for browser in [&mut phone, &mut laptop] {
        assert_eq!(
            browser.get("/dashboard").await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            browser.get("/sessions").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    servers.stop().await;
}

async fn max_sessions_per_user_comes_from_the_yaml(kind: Kind) {
    let yaml = r"
middlewares:
  LoadSessionMiddleware:
    use: plugins.session.middlewares.LoadSessionMiddleware
    config:
      cookieHTTPOnly: true
      maxSessionsPerUser: 2
";
    let config = GatewayConfig::from_yaml(yaml).unwrap();
    assert_eq!(config.session.max_sessions_per_user, Some(2));
    let clock = ManualClock::new(1_700_000_000_000);
    let manager = SessionManager::<GatewaySession>::builder(MemoryStore::new())
        .config(config.session.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let servers = start_with(kind, manager, &config.headers).await;
    let (mut a, mut b, mut c) = (
        Browser::new(&servers),
        Browser::new(&servers),
        Browser::new(&servers),
    );
    a.login().await;
    clock.advance(Duration::from_secs(5 * 60));
    b.login().await;
    clock.advance(Duration::from_secs(5 * 60));
    a.get("/").await; // a is used again: b is the least recently used
    clock.advance(Duration::from_secs(5 * 60));
    c.login().await;
    assert_eq!(
        b.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED,
        "evicted"
    );
    assert_eq!(a.get("/dashboard").await.status, StatusCode::OK);
    assert_eq!(c.get("/dashboard").await.status, StatusCode::OK);
    assert_eq!(handles_of(&c.get("/sessions").await).len(), 2);
    servers.stop().await;
}

//! The request spans of both gateway examples carry the session id's
//! fingerprint, never the id. In a test binary of its own, its two tests
//! taking turns: `tracing` caches per-callsite interest process-wide, so
//! callsites first hit by a concurrent test without a subscriber could be
//! skipped by a test's scoped subscriber. The apps run in process, on the
//! test's thread, where the scoped subscriber is.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;

use actix_web::test::{self, TestRequest};
use axum::body::Body;
use common::Kind;
use http_body_util::BodyExt;
use sessionkit::id::SessionId;
use sessionkit::MemoryStore;
use sessionkit_examples::gateway::{gateway_app, Gateway, GatewayConfig};
use sessionkit_examples::gateway_axum;
use sessionkit_tests::support::LogCapture;
use tower::ServiceExt;

/// One test at a time in this binary.
static TURN: Mutex<()> = Mutex::new(());

/// The session id a response set, if any.
fn session_cookie<'a>(set_cookies: impl Iterator<Item = &'a str>) -> Option<String> {
    set_cookies
        .filter_map(|v| actix_web::cookie::Cookie::parse(v.to_owned()).ok())
        .find(|c| c.name() == "session_id")
        .map(|c| c.value().to_owned())
}

/// `GET /` without a cookie, then `GET /?session_id=x` with the cookie it
/// set, through the actix gateway; the id and the second status.
async fn visit_actix() -> (String, u16) {
    let gateway = Gateway::new(
        &GatewayConfig::default(),
        MemoryStore::new(),
        "http://127.0.0.1:1",
    )
    .unwrap();
    let app = test::init_service(gateway_app(gateway)).await;
    let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
    let set = res.headers().get_all("set-cookie");
    let id = session_cookie(set.map(|v| v.to_str().unwrap())).unwrap();
    let cookie = actix_web::cookie::Cookie::new("session_id", id.clone());
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/?session_id=x")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    (id, res.status().as_u16())
}

/// As [`visit_actix`], through the axum gateway.
async fn visit_axum() -> (String, u16) {
    let gateway = gateway_axum::Gateway::new(
        &GatewayConfig::default(),
        MemoryStore::new(),
        "http://127.0.0.1:1",
    )
    .unwrap();
    let app = gateway_axum::gateway_router(gateway);
    let get = |uri: &str, cookie: Option<&str>| {
        let mut req = axum::http::Request::get(uri);
        if let Some(id) = cookie {
            req = req.header("cookie", format!("session_id={id}"));
        }
        req.body(Body::empty()).unwrap()
    };
    let res = app.clone().oneshot(get("/", None)).await.unwrap();
    let set = res.headers().get_all("set-cookie");
    let id = session_cookie(set.iter().map(|v| v.to_str().unwrap())).unwrap();
    let res = app.oneshot(get("/?session_id=x", Some(&id))).await.unwrap();
    let status = res.status().as_u16();
    res.into_body().collect().await.unwrap();
    (id, status)
}

/// Runs `kind`'s visit under a subscriber capturing the logs; checks them.
fn spans_carry_the_fingerprint_never_the_id(kind: Kind) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let captured = LogCapture::default();
    // INFO: tracing-subscriber's default level.
    let subscriber = captured.subscriber(tracing::Level::INFO);
    let (id, status) = tracing::subscriber::with_default(subscriber, || match kind {
        Kind::Actix => actix_web::rt::System::new().block_on(visit_actix()),
        Kind::Axum => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(visit_axum()),
    });
    assert_eq!(status, 200);
    let logs = captured.text();
    let fingerprint = SessionId::parse(&id).unwrap().fingerprint().to_string();
    assert!(logs.contains(&format!("session={fingerprint}")), "{logs}");
    assert!(logs.contains("method=GET path=\"/\""), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(!logs.contains(&id), "the id reached the logs:\n{logs}");
    assert!(
        !logs.contains("session_id=x"),
        "the query reached the logs:\n{logs}"
    );
}

#[test]
fn actix_request_spans_carry_the_fingerprint_never_the_id() {
    spans_carry_the_fingerprint_never_the_id(Kind::Actix);
}

#[test]
fn axum_request_spans_carry_the_fingerprint_never_the_id() {
    spans_carry_the_fingerprint_never_the_id(Kind::Axum);
}

//! The gateway's operability: `GET /metrics`, and `/public/*` staying up
//! while the store is down (request spans: `gateway_spans.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::HttpServer;
use metrics_exporter_prometheus::PrometheusHandle;
use sessionkit::{MemoryStore, SessionId};
use sessionkit_examples::gateway::{
    dashboard_app, gateway_app, install_prometheus, Gateway, GatewayConfig,
};
use sessionkit_tests::support::RecordingStore;

fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session_id")
        .map(|c| c.value().to_owned())
}

/// The process-wide Prometheus recorder (installed once for this test binary).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| install_prometheus().unwrap()).clone()
}

#[actix_web::test]
async fn metrics_are_served_in_the_prometheus_text_format_without_ids() {
    let gateway = Gateway::new(
        &GatewayConfig::default(),
        MemoryStore::new(),
        "http://127.0.0.1:1",
    )
    .unwrap()
    .with_metrics(prometheus());
    let app = test::init_service(gateway_app(gateway)).await;
    let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
    let id = session_cookie(&res).unwrap();
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/")
            .cookie(actix_web::cookie::Cookie::new("session_id", id.clone()))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    let res = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
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
}

#[actix_web::test]
async fn public_pages_stay_up_while_the_store_is_down() {
    let downstream = HttpServer::new(dashboard_app)
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = downstream.addrs()[0];
    let downstream = downstream.run();
    let handle = downstream.handle();
    actix_web::rt::spawn(downstream);

    let store = RecordingStore::new(MemoryStore::new());
    let gateway = Gateway::new(
        &GatewayConfig::default(),
        store.clone(),
        format!("http://{addr}"),
    )
    .unwrap();
    let app = test::init_service(gateway_app(gateway)).await;
    let res = test::call_service(
        &app,
        TestRequest::post()
            .uri("/login")
            .set_form([("email", "user@example.com"), ("password", "password")])
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = actix_web::cookie::Cookie::new("session_id", session_cookie(&res).unwrap());
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/public/a")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["headers"]["x-user-id"], "1", "{body}");

    store.set_failing(true);
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/public/a")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "public pages stay up");
    assert!(session_cookie(&res).is_none(), "the client keeps its id");
    let body: serde_json::Value = test::read_body_json(res).await;
    assert!(
        body["headers"].get("x-user-id").is_none(),
        "anonymous downstream: {body}"
    );
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard/x")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "pages that need the session fail"
    );
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/cart")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    store.set_failing(false);
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/public/a")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(
        body["headers"]["x-user-id"], "1",
        "the session is back: {body}"
    );
    handle.stop(false).await;
}

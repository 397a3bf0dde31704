//! A failing store's error reaches the logs once, with every cause in it
//! exactly once, whatever layers it went through (store, breaker, metrics,
//! session error, actix middleware); the client's answer names none of them.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use sessionkit::breaker::CircuitBreaker;
use sessionkit::store::SessionStore;
use sessionkit::{Config, MemoryStore, RedisStore, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};
use sessionkit_tests::support::{LogCapture, Profile, RecordingStore, VISITS};

async fn bump(session: Session<Profile>) -> HttpResponse {
    session.update(VISITS, |v| *v += 1);
    HttpResponse::Ok().finish()
}

/// Serves one request that needs the session through `store` and returns
/// what was logged (everything at debug level and above) and the status.
fn logged(store: impl SessionStore) -> (String, StatusCode, String) {
    let captured = LogCapture::default();
    let subscriber = captured.subscriber(tracing::Level::DEBUG);
    let config = Config::builder()
        .cookie_http_only(true)
        .cookie_secure(true)
        .build()
        .unwrap();
    let manager = SessionManager::<Profile>::builder(store)
        .config(config)
        .build()
        .unwrap();
    let (status, body) = tracing::subscriber::with_default(subscriber, || {
        actix_web::rt::System::new().block_on(async {
            let app = test::init_service(
                App::new()
                    .wrap(SessionMiddleware::new(manager))
                    .route("/", web::post().to(bump)),
            )
            .await;
            let req = TestRequest::post()
                .uri("/")
                .cookie(actix_web::cookie::Cookie::new("session_id", "a".repeat(24)))
                .to_request();
            let res = test::call_service(&app, req).await;
            let status = res.status();
            let body = test::read_body(res).await;
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    });
    let logs = captured.text();
    (logs, status, body)
}

#[track_caller]
fn once(logs: &str, needle: &str) {
    assert_eq!(logs.matches(needle).count(), 1, "{needle:?} in:\n{logs}");
}

#[test]
fn an_injected_cause_is_logged_exactly_once() {
    let store = RecordingStore::new(MemoryStore::new());
    store.set_failing(true);
    let (logs, status, body) = logged(CircuitBreaker::new(store));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains("injected"), "{body}");
    once(&logs, "the session store is unavailable");
    once(&logs, "injected failure");
}

#[test]
fn a_redis_cause_is_logged_exactly_once() {
    // Nothing listens on port 1: the connection is refused at once.
    let store = RedisStore::builder("redis://127.0.0.1:1").build().unwrap();
    let (logs, status, body) = logged(store);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains("127.0.0.1"), "{body}");
    once(&logs, "the session store is unavailable");
    once(&logs, "Redis at 127.0.0.1:1 failed");
    once(&logs, "refused");
}

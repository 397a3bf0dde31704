//! The small examples: quick-start counter, header-only API sessions, and
//! the store pattern from a background task.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use actix_web::test::{self, TestRequest};
use sessionkit::{MemoryStore, SessionManager};
use sessionkit_examples::api::{api_app, api_manager};
use sessionkit_examples::background::{mark_report_ready, JobSession, JobSessionSessionExt};
use sessionkit_examples::counter::{counter_app, counter_router, Counter};

#[actix_web::test]
async fn counter_counts_per_visitor() {
    let app = test::init_service(counter_app(SessionManager::<Counter>::new(
        MemoryStore::new(),
    )))
    .await;
    let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(test::read_body(res).await, "Visits: 1");
    for expected in ["Visits: 2", "Visits: 3"] {
        let req = TestRequest::get()
            .uri("/")
            .insert_header(("Cookie", cookie.as_str()))
            .to_request();
        assert_eq!(test::call_and_read_body(&app, req).await, expected);
    }
    // Another visitor starts at one.
    let other = test::call_and_read_body(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(other, "Visits: 1");
}

#[tokio::test]
async fn counter_counts_per_visitor_on_axum() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = counter_router(SessionManager::<Counter>::new(MemoryStore::new()));
    let get = |cookie: Option<&str>| {
        let mut req = axum::http::Request::get("/");
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let res = get(None).await.unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "Visits: 1");
    let res = get(Some(&cookie)).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "Visits: 2");
}

#[actix_web::test]
async fn api_sessions_use_the_token_header_only() {
    let app = test::init_service(api_app(api_manager(MemoryStore::new()).unwrap())).await;
    let res = test::call_service(&app, TestRequest::post().uri("/api/data").to_request()).await;
    assert!(res.headers().get("set-cookie").is_none());
    let token = res
        .headers()
        .get("x-session-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body, serde_json::json!({"data": "some data", "calls": 1}));
    let req = TestRequest::post()
        .uri("/api/data")
        .insert_header(("X-Session-Token", token.as_str()))
        .to_request();
    let body: serde_json::Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(body["calls"], 2);
}

#[tokio::test]
async fn background_task_changes_a_session_by_id() {
    let manager = SessionManager::<JobSession>::new(MemoryStore::new());
    let session = manager.create().unwrap();
    session.set_user_id(Some(7));
    session.save().await.unwrap();
    let id = session.id().to_string();

    let task_manager = manager.clone();
    let task_id = id.clone();
    let found = tokio::spawn(async move { mark_report_ready(&task_manager, &task_id).await })
        .await
        .unwrap()
        .unwrap();
    assert!(found);
    let again = manager.load_by_id(&id).await.unwrap().unwrap();
    assert!(again.report_ready());
    assert_eq!(again.task_runs(), 1);
    assert_eq!(again.user_id(), Some(7));

    // Unknown and malformed ids.
    assert!(!mark_report_ready(&manager, "0123456789abcdef0123")
        .await
        .unwrap());
    assert!(mark_report_ready(&manager, "{bad}").await.is_err());
}

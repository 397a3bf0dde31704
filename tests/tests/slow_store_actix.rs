//! A slow store behind actix-web: with `TimeoutStore` the request gets the
//! error handler's 503 instead of hanging, and the app serves again once the
//! store answers in time.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use sessionkit::{MemoryStore, SessionManager, TimeoutStore};
use sessionkit_actix::{Session, SessionMiddleware};
use sessionkit_tests::support::{Profile, RecordingStore, VISITS};

async fn count(session: Session<Profile>) -> HttpResponse {
    let visits = session.update(VISITS, |v| {
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(visits.to_string())
}

#[actix_web::test]
async fn hung_store_gets_503_not_a_hang_and_recovers() {
    let slow = RecordingStore::new(MemoryStore::new());
    let store = TimeoutStore::new(slow.clone(), Duration::from_millis(100));
    let manager = SessionManager::<Profile>::new(store);
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager))
            .route("/", web::get().to(count))
            .route("/plain", web::get().to(HttpResponse::Ok)),
    )
    .await;

    let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .response()
        .cookies()
        .find(|c| c.name() == "session_id")
        .expect("session cookie")
        .into_owned();

    // The store hangs (a minute per call): each request ends with the
    // opaque 503 once the 100 ms bound passes.
    slow.set_delay(Duration::from_secs(60));
    let req = TestRequest::get()
        .uri("/")
        .cookie(cookie.clone())
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = test::read_body(res).await;
    assert!(!body.is_empty() && !String::from_utf8_lossy(&body).contains("Timeout"));
    // Routes that do not touch the session are unaffected.
    let res = test::call_service(&app, TestRequest::get().uri("/plain").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);

    // Back to normal: the session is intact (the failed request changed nothing).
    slow.set_delay(Duration::ZERO);
    let req = TestRequest::get().uri("/").cookie(cookie).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(test::read_body(res).await, "2");
}

//! The circuit breaker against a real `redis-server` that is frozen
//! (SIGSTOP), brought back, killed and restarted, under concurrent requests
//! through actix-web. (The anonymous failure policy behind an open breaker
//! is a conformance case, run on both adapters:
//! `anonymous_policy_behind_an_open_breaker_asks_the_store_nothing`.)
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod redis_common;

use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use futures_util::future::join_all;
use redis_common::{fast, Wide, F};
use sessionkit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use sessionkit::{Config, RedisStore, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};
use sessionkit_tests::redis_server::{unique_prefix, RedisServer};
use sessionkit_tests::support::RecordingStore;

async fn bump(session: Session<Wide>) -> HttpResponse {
    session.update(F[0], |v| *v += 1);
    HttpResponse::Ok().finish()
}

async fn read(session: Session<Wide>) -> HttpResponse {
    HttpResponse::Ok().body(session.get(F[0]).to_string())
}

const CONCURRENT: usize = 24;

/// Sends `n` requests for `uri` at once and returns their statuses.
async fn burst<S>(app: &S, uri: &str, cookie: &Cookie<'static>, n: usize) -> Vec<StatusCode>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let responses = join_all((0..n).map(|_| {
        test::call_service(
            app,
            TestRequest::get()
                .uri(uri)
                .cookie(cookie.clone())
                .to_request(),
        )
    }))
    .await;
    responses.iter().map(ServiceResponse::status).collect()
}

/// Polls `/read` until it answers 200 (bounded); returns the body.
async fn until_served<S>(app: &S, cookie: &Cookie<'static>) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = test::call_service(
            app,
            TestRequest::get()
                .uri("/read")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        if res.status() == StatusCode::OK {
            let body = test::read_body(res).await;
            return String::from_utf8_lossy(&body).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "not served again after Redis came back"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn the_breaker_fails_fast_while_redis_is_frozen_or_down_and_closes_when_it_is_back() {
    let mut server = RedisServer::start();
    let recording = RecordingStore::new(fast(
        RedisStore::builder(server.url()).prefix(unique_prefix("breaker")),
    ));
    let breaker = CircuitBreaker::with_config(
        recording.clone(),
        BreakerConfig::default()
            .with_failure_threshold(5)
            .with_cool_down(Duration::from_secs(1)),
    );
    let config = Config::builder().disable_auto_renew(true).build().unwrap();
    let manager = SessionManager::<Wide>::builder(breaker.clone())
        .config(config)
        .build()
        .unwrap();
    let app = test::init_service(
        App::new().service(
            web::scope("")
                .wrap(SessionMiddleware::new(manager))
                .route("/bump", web::post().to(bump))
                .route("/read", web::get().to(read)),
        ),
    )
    .await;
    let res = test::call_service(&app, TestRequest::post().uri("/bump").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .response()
        .cookies()
        .find(|c| c.name() == "session_id")
        .map(Cookie::into_owned)
        .expect("a session cookie");

    for outage in ["frozen", "down"] {
        if outage == "frozen" {
            server.pause();
        } else {
            server.stop();
        }
        recording.take_calls();
        // Every request in flight waits for the store's timeout and fails;
        // enough consecutive failures open the breaker.
        let statuses = burst(&app, "/read", &cookie, CONCURRENT).await;
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
            "{outage}: {statuses:?}"
        );
        assert_eq!(breaker.state(), BreakerState::Open, "{outage}");
        let asked = recording.take_calls().len();
        assert!(asked >= 5, "{outage}: {asked} calls reached the store");

        // Open: the store is not asked at all, every request fails fast.
        let statuses = burst(&app, "/read", &cookie, CONCURRENT).await;
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
            "{outage}: {statuses:?}"
        );
        assert_eq!(
            recording.take_calls().len(),
            0,
            "{outage}: the open breaker asked the store"
        );

        if outage == "frozen" {
            server.resume();
            // The session survived the freeze.
            assert_eq!(until_served(&app, &cookie).await, "1");
        } else {
            server.restart();
            // A restarted server is empty: the client gets a fresh session.
            assert_eq!(until_served(&app, &cookie).await, "0");
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "{outage}");
        let statuses = burst(&app, "/read", &cookie, CONCURRENT).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{outage}: {statuses:?}"
        );
    }
}

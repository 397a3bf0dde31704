//! The Redis store behind actix-web: many concurrent requests of one session
//! changing different fields, and `503` while Redis is down.

mod redis_common;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use futures_util::future::join_all;
use redis_common::{fast, Wide, F, WIDE};
use sessionkit::{Config, RedisStore, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};
use sessionkit_tests::redis_server::{unique_prefix, RedisCluster, RedisServer};

async fn bump(session: Session<Wide>, field: web::Path<usize>) -> HttpResponse {
    let Some(key) = F.get(field.into_inner()) else {
        return HttpResponse::NotFound().finish();
    };
    session.update(*key, |v| *v += 1);
    HttpResponse::Ok().finish()
}

async fn read(session: Session<Wide>) -> HttpResponse {
    let values: Vec<String> = session.snapshot().f.iter().map(u32::to_string).collect();
    HttpResponse::Ok().body(values.join(","))
}

async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("plain")
}

fn manager(store: RedisStore) -> SessionManager<Wide> {
    SessionManager::builder(store)
        .config(
            Config::builder()
                .disable_auto_renew(true)
                .build()
                .expect("config"),
        )
        .build()
        .expect("manager")
}

macro_rules! app {
    ($manager:expr) => {
        test::init_service(
            App::new()
                .wrap(SessionMiddleware::new($manager))
                .route("/bump/{field}", web::post().to(bump))
                .route("/read", web::get().to(read))
                .route("/plain", web::get().to(plain)),
        )
        .await
    };
}

fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session_id")
        .map(Cookie::into_owned)
}

/// Many requests of one session in flight at once, each changing its own
/// field, round after round: the result holds every change.
async fn concurrent_requests(store: RedisStore) {
    let app = app!(manager(store));
    let res = test::call_service(&app, TestRequest::post().uri("/bump/0").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res).expect("a session cookie");
    let rounds = 5;
    for _ in 0..rounds {
        // One request per field, all in flight at once. (Two requests that
        // change the *same* field race like any read-modify-write.)
        let responses = join_all((0..WIDE).map(|i| {
            test::call_service(
                &app,
                TestRequest::post()
                    .uri(&format!("/bump/{i}"))
                    .cookie(cookie.clone())
                    .to_request(),
            )
        }))
        .await;
        for res in responses {
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    let res = test::call_service(
        &app,
        TestRequest::get().uri("/read").cookie(cookie).to_request(),
    )
    .await;
    let body = test::read_body(res).await;
    let mut expected = vec![rounds.to_string(); WIDE];
    expected[0] = (rounds + 1).to_string();
    assert_eq!(
        std::str::from_utf8(&body).expect("utf-8"),
        expected.join(","),
        "a concurrent write was lost"
    );
}

#[actix_web::test]
async fn concurrent_requests_of_one_session_single_node() {
    let store = RedisStore::builder(RedisServer::shared().url())
        .prefix(unique_prefix("actix"))
        .build()
        .expect("store");
    concurrent_requests(store).await;
}

#[actix_web::test]
async fn concurrent_requests_of_one_session_cluster() {
    let store = RedisStore::cluster_builder(RedisCluster::shared().urls())
        .prefix(unique_prefix("actix"))
        .build()
        .expect("store");
    concurrent_requests(store).await;
}

/// Redis down: requests that use the session get `503` quickly, routes that
/// do not use it still work; Redis back: the app serves again, no restart.
#[actix_web::test]
async fn service_unavailable_while_redis_is_down() {
    let mut server = RedisServer::start();
    let app = app!(manager(fast(RedisStore::builder(server.url()))));
    let res = test::call_service(&app, TestRequest::post().uri("/bump/1").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res).expect("a session cookie");

    server.stop();
    for _ in 0..3 {
        let res = test::call_service(
            &app,
            TestRequest::get()
                .uri("/read")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = test::read_body(res).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("127.0.0.1"),
            "no backend detail leaks to the client: {body:?}"
        );
        let res = test::call_service(&app, TestRequest::post().uri("/bump/2").to_request()).await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "a new session cannot be saved either"
        );
    }
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/plain")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "no session, no store access");

    server.restart();
    let res = test::call_service(&app, TestRequest::post().uri("/bump/3").to_request()).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "serves again after the restart"
    );
    let cookie = session_cookie(&res).expect("a new session");
    let res = test::call_service(
        &app,
        TestRequest::get().uri("/read").cookie(cookie).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = test::read_body(res).await;
    assert_eq!(
        std::str::from_utf8(&body).expect("utf-8"),
        "0,0,0,1,0,0,0,0,0,0,0,0"
    );
}

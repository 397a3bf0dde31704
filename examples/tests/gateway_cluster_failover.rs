//! The gateway on a Redis Cluster of three masters with a replica each,
//! from a comma-separated `REDIS_URL`, over HTTP: a planned `CLUSTER
//! FAILOVER` of the master holding the session (the old master, now a
//! replica, still up and redirecting), then that master killed (`kill -9`).
//! During each, requests fail fast (503) or are served, never a 500 or a
//! hang; then the gateway serves again without a restart, with the login
//! and the cart written (and replicated) before.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use common::{manager_for, start_with, Answer, Browser, Kind};
use sessionkit::id::SessionId;
use sessionkit::RedisStore;
use sessionkit_examples::gateway::{store_for, GatewayConfig};
use sessionkit_tests::redis_server::RedisClusterHa;

/// `GET path` until it is not a 503 (bounded); no answer may be a 500.
async fn until_served(browser: &mut Browser, path: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let begun = Instant::now();
        let answer = browser.get(path).await;
        assert!(
            !answer.status.is_server_error() || answer.status == StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {} during a failover",
            answer.status
        );
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            begun.elapsed()
        );
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return answer;
        }
        assert!(Instant::now() < deadline, "{path} still 503 after 30 s");
    }
}

async fn failovers_keep_the_login_and_the_cart(kind: Kind) {
    let mut cluster = tokio::task::spawn_blocking(RedisClusterHa::start)
        .await
        .unwrap();
    let url = cluster.urls().join(",");
    let store: Arc<dyn sessionkit::store::DynSessionStore> = store_for(Some(&url)).unwrap();
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    browser.post("/cart/add", &[("item_id", "42")]).await;
    assert_eq!(browser.login().await.status, StatusCode::OK);
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);

    for step in ["CLUSTER FAILOVER", "kill -9 of the master"] {
        // The master holding the session now (the login rotated its id).
        let id = SessionId::parse(browser.jar.get("session_id").expect("a session cookie"))
            .expect("an id");
        let key = RedisStore::cluster_builder(cluster.urls())
            .build()
            .unwrap()
            .key_for(&id);
        // Blocking calls on the test's thread: no request is in flight.
        cluster.sync_replicas();
        let old = cluster.master_of(&key);
        let new = if step.starts_with("CLUSTER") {
            cluster.failover(old)
        } else {
            cluster.kill_master(old)
        };
        assert_ne!(old, new, "{step}");
        assert_eq!(cluster.master_of(&key), new, "{step}");
        // A new client: the server may have closed idle keep-alive
        // connections while the test thread waited.
        let jar = browser.jar.clone();
        browser = Browser::new(&servers);
        browser.jar = jar;
        let dashboard = until_served(&mut browser, "/dashboard").await;
        assert_eq!(dashboard.status, StatusCode::OK, "{step}: still logged in");
        let cart = until_served(&mut browser, "/cart").await;
        assert_eq!(cart.json()["items"][0], "42", "{step}: the cart survived");
        // Writes work on the new master.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let added = browser.post("/cart/add", &[("item_id", "7")]).await;
            assert_ne!(added.status, StatusCode::INTERNAL_SERVER_ERROR, "{step}");
            if added.status == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "{step}: no write after it");
        }
        assert!(
            until_served(&mut browser, "/cart").await.body.contains('7'),
            "{step}"
        );
        let mut fresh = Browser::new(&servers);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fresh.login().await.status != StatusCode::OK {
            assert!(Instant::now() < deadline, "{step}: no login after it");
        }
    }
    servers.stop().await;
}

#[actix_web::test]
async fn on_actix() {
    failovers_keep_the_login_and_the_cart(Kind::Actix).await;
}

#[actix_web::test]
async fn on_axum() {
    failovers_keep_the_login_and_the_cart(Kind::Axum).await;
}

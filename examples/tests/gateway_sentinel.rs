//! The gateway on Redis Sentinel from `REDIS_URL=redis+sentinel://…`, over
//! HTTP: a failover the sentinels are asked for, then a killed primary.
//! During each, requests fail fast (503, the breaker) and never hang; then
//! the gateway serves again without a restart, with the login and the cart
//! written (and replicated) before the failover.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use common::{manager_for, start_with, Answer, Browser, Kind};
use sessionkit_examples::gateway::{store_for, GatewayConfig};
use sessionkit_tests::redis_server::RedisSentinel;

/// `GET path` until it is not a 503 (bounded); the 503s on the way.
async fn until_served(browser: &mut Browser, path: &str) -> (Answer, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut unavailable = 0;
    loop {
        let answer = browser.get(path).await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return (answer, unavailable);
        }
        unavailable += 1;
        assert!(Instant::now() < deadline, "{path} still 503 after 30 s");
    }
}

async fn failovers_keep_the_login_and_the_cart(kind: Kind) {
    let mut set = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let hosts: Vec<String> = set
        .sentinel_urls()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    let url = format!(
        "redis+sentinel://{}/{}",
        hosts.join(","),
        RedisSentinel::SERVICE
    );
    let store: Arc<dyn sessionkit::store::DynSessionStore> = store_for(Some(&url)).unwrap();
    let config = GatewayConfig::default();
    let servers = start_with(kind, manager_for(&config, store), &config.headers).await;
    let mut browser = Browser::new(&servers);
    browser.post("/cart/add", &[("item_id", "42")]).await;
    assert_eq!(browser.login().await.status, StatusCode::OK);
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);

    for step in ["SENTINEL FAILOVER", "kill -9 of the primary"] {
        // Blocking calls on the test's thread: no request is in flight.
        set.sync_replicas();
        let old = set.primary_port();
        let new = if step.starts_with("SENTINEL") {
            set.failover()
        } else {
            set.kill_primary()
        };
        assert_ne!(old, new, "{step}");
        // A new client: the server may have closed idle keep-alive
        // connections while the test thread waited.
        let jar = browser.jar.clone();
        browser = Browser::new(&servers);
        browser.jar = jar;
        let (dashboard, _) = until_served(&mut browser, "/dashboard").await;
        assert_eq!(dashboard.status, StatusCode::OK, "{step}: still logged in");
        let (cart, _) = until_served(&mut browser, "/cart").await;
        assert_eq!(cart.json()["items"][0], "42", "{step}: the cart survived");
        // Writes work on the new primary.
        let added = browser.post("/cart/add", &[("item_id", "7")]).await;
        let (_, _) = until_served(&mut browser, "/cart").await;
        if added.status == StatusCode::OK {
            assert!(browser.get("/cart").await.body.contains('7'), "{step}");
        }
        let mut fresh = Browser::new(&servers);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fresh.login().await.status != StatusCode::OK {
            assert!(
                Instant::now() < deadline,
                "{step}: no login after the failover"
            );
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

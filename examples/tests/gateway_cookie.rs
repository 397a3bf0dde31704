//! `SESSION_STORE=cookie` on the gateway examples (actix and axum), over
//! HTTP: the session lives whole in an encrypted cookie (login, forwarded
//! headers, cart, logout work as on a server store), the per-user endpoints
//! answer `501` saying why, and key rotation end to end: a cookie sealed
//! under the old key keeps working after rotation and comes back sealed
//! under the new one; once the old key is removed it is refused.

#![allow(clippy::unwrap_used)]

mod common;

use actix_web::http::StatusCode;
use common::{both, start_with, Browser, Kind, Servers};
use sessionkit_examples::backend::{builder, Backend};
use sessionkit_examples::gateway::{GatewayConfig, GatewaySession};
use sessionkit_examples::keys::SessionKeys;

const OLD: &str = "b2xkLWtleS1vZi10aGUtZ2F0ZXdheS1jb29raWUtdGVzdC0z";
const NEW: &str = "bmV3LWtleS1vZi10aGUtZ2F0ZXdheS1jb29raWUtdGVzdC0z";

/// The `kind` gateway on the cookie store under `keys` (`SESSION_KEYS`).
async fn gateway(kind: Kind, keys: &str) -> Servers {
    let config = GatewayConfig::default();
    let keys = SessionKeys::parse(keys, false).unwrap();
    let manager = builder::<GatewaySession>(Some(&keys), &Backend::Cookie, config.session.clone())
        .unwrap()
        .build()
        .unwrap();
    start_with(kind, manager, &config.headers).await
}

async fn the_gateway_runs_on_the_cookie_store(kind: Kind) {
    let servers = gateway(kind, NEW).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(
        browser
            .post("/cart/add", &[("item_id", "apple")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(browser.login().await.status, StatusCode::OK);
    let cookie = browser.sid();
    assert!(cookie.len() > 100, "the session is in the cookie: {cookie}");
    assert!(!cookie.contains("apple"), "and it is encrypted");
    let res = browser.get("/dashboard").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["headers"]["x-user-id"], "1", "{}", res.body);
    browser.post("/cart/add", &[("item_id", "pear")]).await;
    assert_eq!(
        browser.get("/cart").await.json()["items"],
        serde_json::json!(["apple", "pear"])
    );
    let res = browser.get("/sessions").await;
    assert_eq!(res.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        res.json()["reason"]
            .as_str()
            .unwrap()
            .contains("cookie store"),
        "{}",
        res.body
    );
    let copy = browser.jar.clone();
    assert_eq!(browser.post("/logout", &[]).await.status, StatusCode::OK);
    assert_eq!(
        browser.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    // What a cookie store cannot do: a copy taken before logout still opens
    // (until its idle timeout).
    let mut thief = Browser::new(&servers);
    thief.jar = copy;
    assert_eq!(thief.get("/dashboard").await.status, StatusCode::OK);
    servers.stop().await;
}

async fn rotation_keeps_old_cookies_working_and_reseals_them(kind: Kind) {
    let old = gateway(kind, OLD).await;
    let mut browser = Browser::new(&old);
    assert_eq!(browser.login().await.status, StatusCode::OK);
    let issued = browser.jar.clone();
    old.stop().await;

    let rotated = gateway(kind, &format!("{NEW},{OLD}")).await;
    let mut same = Browser::new(&rotated);
    same.jar = issued.clone();
    let res = same.get("/dashboard").await;
    assert_eq!(res.status, StatusCode::OK, "the old cookie still works");
    let resealed = res.session_cookie().expect("re-sealed under the new key");
    assert_ne!(resealed.value(), issued["session_id"]);
    rotated.stop().await;

    let after = gateway(kind, NEW).await;
    let mut stale = Browser::new(&after);
    stale.jar = issued;
    assert_eq!(
        stale.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut fresh = Browser::new(&after);
    fresh.jar = same.jar.clone();
    assert_eq!(fresh.get("/dashboard").await.status, StatusCode::OK);
    after.stop().await;
}

both!(
    the_gateway_runs_on_the_cookie_store,
    rotation_keeps_old_cookies_working_and_reseals_them,
);

//! Sessions per user on Redis, with a request stopped between the two
//! round trips of one store call (issue 20, reproductions 1 and 3), over
//! HTTP against two instances of the gateway example sharing one Redis:
//! instance A talks to Redis through a proxy that can hold or cut one
//! command (`sessionkit_tests::resp_proxy`), instance B talks to it
//! directly, as two app servers behind one load balancer would.
//!
//! 1. A login on A is held after its principal-index step and before the
//!    write that creates the session; meanwhile B lists the user's sessions
//!    three times. Before the fix a listing dropped the index entry it found
//!    without a record, and the login then outlived "log out everywhere".
//!    Now the entry stays: the login is listed and revoked.
//! 2. A "log out everywhere" on A is cut after it marked the entries and
//!    before it deleted the sessions (503). Before the fix the entries had
//!    left the index, so the retry revoked 0 and the other device stayed
//!    signed in. Now the retry finds the marked entries and finishes.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use actix_web::http::StatusCode;
use common::*;
use futures_util::future::join;
use serde_json::json;
use sessionkit::store::DynSessionStore;
use sessionkit_examples::gateway::{store_for, GatewayConfig};
use sessionkit_tests::redis_server::RedisServer;
use sessionkit_tests::resp_proxy::{is_delete_owned, is_write, RespProxy};

both!(
    a_login_held_before_its_record_is_listed_and_revoked,
    a_revocation_cut_between_its_steps_finishes_on_retry,
);

/// Gateway A (through `proxy`) and gateway B (straight to `redis`).
async fn two_gateways(kind: Kind, redis: &RedisServer, proxy: &RespProxy) -> (Servers, Servers) {
    let config = GatewayConfig::default();
    let through: Arc<dyn DynSessionStore> = store_for(Some(&proxy.url())).unwrap();
    let direct: Arc<dyn DynSessionStore> = store_for(Some(&redis.url())).unwrap();
    let a = start_with(kind, manager_for(&config, through), &config.headers).await;
    let b = start_with(kind, manager_for(&config, direct), &config.headers).await;
    (a, b)
}

async fn a_login_held_before_its_record_is_listed_and_revoked(kind: Kind) {
    let redis = RedisServer::start();
    let proxy = RespProxy::start(redis.port());
    let (a, b) = two_gateways(kind, &redis, &proxy).await;
    let mut phone = Browser::new(&b);
    assert_eq!(phone.login().await.status, StatusCode::OK);

    // The laptop's login on A: its index step (`add`) passes, its record
    // step (the create) is held.
    let mut laptop = Browser::new(&a);
    proxy.hold_once(|cmd| is_write(cmd, b"c"));
    let listings_meanwhile = async {
        proxy.held().await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let listing = phone.get("/sessions").await;
            assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
            seen.push(handles_of(&listing).len());
        }
        proxy.release();
        seen
    };
    let (login, seen) = join(laptop.login(), listings_meanwhile).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(
        seen,
        [1, 1, 1],
        "the held login has no record yet: not listed"
    );
    assert_eq!(laptop.get("/dashboard").await.status, StatusCode::OK);

    // The listings did not un-index it: it is listed, and revoked.
    let listing = phone.get("/sessions").await;
    assert_eq!(handles_of(&listing).len(), 2, "{}", listing.body);
    let everywhere = phone.post("/logout-everywhere", &[]).await;
    assert_eq!(everywhere.json(), json!({"revoked": 2}));
    assert_eq!(
        laptop.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED,
        "signed out everywhere, the held login included"
    );
    a.stop().await;
    b.stop().await;
}

async fn a_revocation_cut_between_its_steps_finishes_on_retry(kind: Kind) {
    let redis = RedisServer::start();
    let proxy = RespProxy::start(redis.port());
    let (a, b) = two_gateways(kind, &redis, &proxy).await;
    let mut phone = Browser::new(&a);
    let mut laptop = Browser::new(&b);
    assert_eq!(phone.login().await.status, StatusCode::OK);
    assert_eq!(laptop.login().await.status, StatusCode::OK);

    // Every conditional delete (they follow the mark) is cut, the store's
    // one retry on a fresh connection included.
    proxy.cut_every(is_delete_owned);
    let failed = phone.post("/logout-everywhere", &[]).await;
    proxy.disarm();
    assert!(proxy.cuts() >= 2, "the revocation reached its deletes");
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.body
    );
    // Nothing was deleted: both devices still listed.
    let listing = laptop.get("/sessions").await;
    assert_eq!(handles_of(&listing).len(), 2, "{}", listing.body);

    // The same call again finishes the job.
    let retry = phone.post("/logout-everywhere", &[]).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(retry.json(), json!({"revoked": 2}));
    assert_eq!(
        laptop.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        phone.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    a.stop().await;
    b.stop().await;
}

//! A flood of anonymous sessions against the gateway's bounded memory
//! store (issue 20, reproduction 5): 10,000 cookieless `POST /cart/add`
//! with 15 KB item ids, 8 in flight, against the gateway's own 128 MiB
//! bound, after a user signed in. Before anonymous sessions were evicted
//! first, the flood evicted the signed-in session (the oldest deadline) and
//! the user was signed out; now the user stays signed in while the flood's
//! own sessions are evicted.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use actix_web::http::StatusCode;
use common::*;
use futures_util::future::join_all;
use sessionkit::MemoryStore;
use sessionkit_examples::gateway::{GatewayConfig, MEMORY_STORE_BYTES};

both!(an_anonymous_flood_never_signs_a_user_out);

const FLOOD: usize = 10_000;
const IN_FLIGHT: usize = 8;
const ITEM_BYTES: usize = 15 * 1024;

async fn an_anonymous_flood_never_signs_a_user_out(kind: Kind) {
    let config = GatewayConfig::default();
    let store = MemoryStore::with_max_bytes(MEMORY_STORE_BYTES);
    let servers = start_with(kind, manager_for(&config, store.clone()), &config.headers).await;
    let mut victim = Browser::new(&servers);
    assert_eq!(victim.login().await.status, StatusCode::OK);
    assert_eq!(victim.get("/dashboard").await.status, StatusCode::OK);

    let item = "x".repeat(ITEM_BYTES);
    let client = awc::Client::default();
    let url = format!("{}/cart/add", servers.base);
    let workers = (0..IN_FLIGHT).map(|_| {
        let (client, url, item) = (&client, &url, &item);
        async move {
            let mut ok = 0usize;
            for _ in 0..FLOOD / IN_FLIGHT {
                let mut res = client
                    .post(url.as_str())
                    .send_form(&[("item_id", item.as_str())])
                    .await
                    .expect("flood request");
                res.body().limit(1 << 20).await.expect("flood body");
                if res.status() == StatusCode::OK {
                    ok += 1;
                }
            }
            ok
        }
    });
    let accepted: usize = join_all(workers).await.into_iter().sum();
    assert_eq!(accepted, FLOOD, "every anonymous add was served");
    let held = store.len();
    eprintln!(
        "flood: {FLOOD} anonymous sessions of ~{ITEM_BYTES} bytes against a {} MiB bound: \
         {held} entries held, {} MiB weighed",
        MEMORY_STORE_BYTES >> 20,
        store.weighted_size() >> 20
    );
    assert!(
        (held as usize) < FLOOD,
        "the flood must pass the bound for this test to mean anything: {held} held"
    );
    assert!(store.weighted_size() <= MEMORY_STORE_BYTES);

    let dashboard = victim.get("/dashboard").await;
    assert_eq!(
        dashboard.status,
        StatusCode::OK,
        "the signed-in user survived the flood: {}",
        dashboard.body
    );
    assert_eq!(dashboard.json()["headers"]["x-user-id"], "1");
    servers.stop().await;
}

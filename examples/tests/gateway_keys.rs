//! `SESSION_KEYS` on the gateway examples, over HTTP: signed ids (a forged
//! or guessed id is refused before any store lookup), field values sealed
//! at rest, and key rotation end to end (a cookie issued under the old key
//! keeps working after rotation and comes back signed under the new one;
//! once the old key is removed it is refused).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use actix_web::http::StatusCode;
use common::{both, start_with, Browser, Kind, Servers};
use sessionkit::id::SessionId;
use sessionkit::store::{Loaded, SessionStore};
use sessionkit::MemoryStore;
use sessionkit_examples::gateway::{GatewayConfig, GatewaySession};
use sessionkit_examples::keys::{secure, SessionKeys};
use sessionkit_tests::support::{Call, RecordingStore};

const OLD: &str = "b2xkLWtleS1vZi10aGUtZ2F0ZXdheS1rZXlzLXRlc3QtMzI=";
const NEW: &str = "bmV3LWtleS1vZi10aGUtZ2F0ZXdheS1rZXlzLXRlc3QtMzI=";

/// The `kind` gateway over `store` with `keys` (`SESSION_KEYS`'s value).
async fn gateway(
    kind: Kind,
    store: &RecordingStore,
    keys: Option<&str>,
    migration: bool,
) -> Servers {
    let config = GatewayConfig::default();
    let keys = keys.map(|list| SessionKeys::parse(list, migration).unwrap());
    let manager = secure::<GatewaySession>(keys.as_ref(), Arc::new(store.clone()))
        .config(config.session.clone())
        .build()
        .unwrap();
    start_with(kind, manager, &config.headers).await
}

/// The `kind` gateway over `store` with ids signed by `keys`, values in
/// clear: what a rotation does to ids alone. (Values sealed at rest are
/// re-sealed when they are next written, so removing a key also ends the
/// sessions with values nobody wrote since: the store tests show that.)
async fn signing_gateway(kind: Kind, store: &RecordingStore, keys: &str) -> Servers {
    let config = GatewayConfig::default();
    let keys = sessionkit::keys::Keyring::from_base64_list(keys).unwrap();
    let manager = sessionkit::SessionManager::builder(store.clone())
        .signed_ids(sessionkit::SignedIds::new(keys))
        .config(config.session.clone())
        .build()
        .unwrap();
    start_with(kind, manager, &config.headers).await
}

/// The store id inside a signed token.
fn id_of(token: &str) -> SessionId {
    let (id, tag) = token.rsplit_once('.').expect("a signed token");
    assert_eq!(tag.len(), 43, "{token}");
    SessionId::parse(id).unwrap()
}

fn loads(store: &RecordingStore) -> usize {
    store
        .take_calls()
        .iter()
        .filter(|c| matches!(c, Call::Load(_)))
        .count()
}

async fn signed_ids_are_issued_and_forged_ones_never_reach_the_store(kind: Kind) {
    let memory = MemoryStore::new();
    let store = RecordingStore::new(memory.clone());
    let servers = gateway(kind, &store, Some(NEW), false).await;
    let mut browser = Browser::new(&servers);
    assert_eq!(browser.login().await.status, StatusCode::OK);
    let token = browser.sid();
    let id = id_of(&token);
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);
    // What a dump of the store shows: no value in clear.
    let Loaded::Session(raw) = memory.load(&id, u64::MAX / 2).await.unwrap() else {
        panic!("the session is stored under the id inside the token")
    };
    for (_, value) in raw.fields.iter() {
        let text = String::from_utf8_lossy(value);
        assert!(!text.contains("demo-token-1"), "a value in clear: {text}");
    }
    // /api/data reports the id as the client presents it.
    let data = browser.get("/api/data").await.json();
    assert_eq!(data["session_id"], token.as_str());

    store.take_calls();
    let (raw_id, tag) = token.rsplit_once('.').unwrap();
    let flipped_tag = {
        let mut t = tag.as_bytes().to_vec();
        t[5] = if t[5] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let guessed = "0123456789abcdef0123456789abcdef";
    for forged in [
        raw_id.to_owned(),
        format!("{raw_id}.{flipped_tag}"),
        format!("{guessed}.{tag}"),
        format!("{token}x"),
        guessed.to_owned(),
    ] {
        let mut attacker = Browser::new(&servers);
        attacker.jar.insert("session_id".into(), forged.clone());
        let res = attacker.get("/dashboard").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{forged}");
        let res = attacker
            .send(
                "GET",
                "/api/data",
                &[("X-Session-ID", forged.as_str())],
                None,
            )
            .await;
        assert_ne!(res.json()["session_id"], token.as_str());
        assert_eq!(loads(&store), 0, "{forged} reached the store");
    }
    servers.stop().await;
}

async fn rotation_keeps_old_cookies_working_and_resigns_them(kind: Kind) {
    let store = RecordingStore::new(MemoryStore::new());
    let old = signing_gateway(kind, &store, OLD).await;
    let mut browser = Browser::new(&old);
    browser.login().await;
    let issued = browser.sid();
    old.stop().await;

    // Rotated: the new key first, the old one kept as a fallback.
    let rotated = signing_gateway(kind, &store, &format!("{NEW},{OLD}")).await;
    let mut same = Browser::new(&rotated);
    same.jar = browser.jar.clone();
    let res = same.get("/dashboard").await;
    assert_eq!(res.status, StatusCode::OK, "the old cookie still works");
    let resealed = res
        .session_cookie()
        .expect("the cookie comes back signed under the new key");
    assert_ne!(resealed.value(), issued);
    assert_eq!(id_of(resealed.value()), id_of(&issued), "the same session");
    rotated.stop().await;

    // The old key removed: the re-signed cookie works, the old one is refused.
    let removed = signing_gateway(kind, &store, NEW).await;
    let mut current = Browser::new(&removed);
    current.jar = same.jar.clone();
    assert_eq!(current.get("/dashboard").await.status, StatusCode::OK);
    let mut stale = Browser::new(&removed);
    stale.jar = browser.jar.clone();
    store.take_calls();
    assert_eq!(
        stale.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(loads(&store), 0);
    removed.stop().await;
}

/// A deployment that ran without keys turns them on: without the migration
/// window its sessions end once; with it, they go on, signed and sealed.
async fn sessions_from_before_the_keys_live_on_only_in_the_migration_window(kind: Kind) {
    let store = RecordingStore::new(MemoryStore::new());
    let before = gateway(kind, &store, None, false).await;
    let mut browser = Browser::new(&before);
    browser.login().await;
    let unsigned = browser.sid();
    assert!(SessionId::parse(&unsigned).is_ok());
    before.stop().await;

    let strict = gateway(kind, &store, Some(NEW), false).await;
    let mut refused = Browser::new(&strict);
    refused.jar = browser.jar.clone();
    assert_eq!(
        refused.get("/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
    strict.stop().await;

    let migrating = gateway(kind, &store, Some(NEW), true).await;
    let mut kept = Browser::new(&migrating);
    kept.jar = browser.jar.clone();
    let res = kept.get("/dashboard").await;
    assert_eq!(res.status, StatusCode::OK);
    let signed = res.session_cookie().expect("answered with a signed id");
    assert_eq!(id_of(signed.value()).as_str(), unsigned);
    // A write seals what it writes; the session goes on with the new cookie.
    assert_eq!(
        kept.post("/cart/add", &[("item_id", "pen")]).await.status,
        StatusCode::OK
    );
    assert_eq!(kept.get("/dashboard").await.status, StatusCode::OK);
    migrating.stop().await;
}

both!(
    signed_ids_are_issued_and_forged_ones_never_reach_the_store,
    rotation_keeps_old_cookies_working_and_resigns_them,
    sessions_from_before_the_keys_live_on_only_in_the_migration_window,
);

/// A malformed `SESSION_KEYS` is a start-up error that names the variable
/// and the key's position, never the key.
#[test]
fn malformed_keys_are_named_by_variable_and_position() {
    let secret = "c2hvcnQta2V5";
    for (list, position) in [
        (format!("{NEW},{secret}"), "2"),
        (format!("{NEW},not*base64"), "2"),
        (String::new(), ""),
    ] {
        let error = SessionKeys::parse(&list, false).unwrap_err();
        let error = sessionkit_examples::gateway::GatewayError::from(error);
        let text = sessionkit::ErrorChain(&error).to_string();
        assert!(text.starts_with("SESSION_KEYS: "), "{text}");
        assert!(text.contains(position), "{text}");
        for part in list.split(',').filter(|p| !p.is_empty()) {
            assert!(!text.contains(part), "{text} shows a key");
        }
    }
}

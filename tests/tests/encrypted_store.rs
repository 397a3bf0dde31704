//! `EncryptedStore` around every store: the store contract and the
//! acceptance suite hold through the wrapper on memory, Redis, Redis
//! Cluster and PostgreSQL (each server started by the test harness), the raw store holds no plaintext,
//! and key rotation re-seals values on their next write.
//!
//! Every contract case holds unchanged through the wrapper: the cases look
//! at stores only through the `SessionStore` trait, which the wrapper
//! answers with opened values.

use std::sync::Arc;

use sessionkit::clock::{Clock, SystemClock};
use sessionkit::id::SessionId;
use sessionkit::keys::Keyring;
use sessionkit::store::{Loaded, SessionStore, Written};
use sessionkit::{EncryptedStore, MemoryStore, PostgresStore, RedisStore, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::postgres_server::{unique_table, PostgresServer};
use sessionkit_tests::redis_server::{lines, unique_prefix, RedisServer};
use sessionkit_tests::store_contract::{create, sid, update};
use sessionkit_tests::support::{LogCapture, Profile, TestRequest, NAME, VISITS};

/// Two test keys (32 × 'A', 32 × 'B'), base64.
const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn keys(list: &str) -> Keyring {
    Keyring::from_base64_list(list).expect("test keys")
}

/// A recognisable plaintext, to look for in raw storage.
const SECRET: &str = "ada-lovelace-plaintext-marker";

const T: u64 = 1_767_225_600_000;

mod memory {
    use super::{keys, KEY_A, KEY_B};
    use sessionkit::{EncryptedStore, MemoryStore};

    mod contract {
        use super::*;
        sessionkit_tests::all_store_contract_cases!(async {
            EncryptedStore::new(MemoryStore::new(), keys(&format!("{KEY_A},{KEY_B}")))
        });
    }

    mod acceptance {
        use super::*;
        sessionkit_tests::acceptance_suite!(async {
            EncryptedStore::new(MemoryStore::new(), keys(KEY_A))
        });
    }
}

mod redis {
    use super::{keys, KEY_A};
    use sessionkit::{EncryptedStore, RedisStore};
    use sessionkit_tests::redis_server::{unique_prefix, RedisServer};

    fn store(test: &str) -> EncryptedStore<RedisStore> {
        let inner = RedisStore::builder(RedisServer::shared().url())
            .prefix(unique_prefix(test))
            .build()
            .expect("store");
        EncryptedStore::new(inner, keys(KEY_A))
    }

    mod contract {
        sessionkit_tests::all_store_contract_cases!(async { super::store("enc-contract") });
    }

    mod acceptance {
        sessionkit_tests::acceptance_suite!(async { super::store("enc-acceptance") });
    }
}

mod redis_cluster {
    use super::{keys, KEY_A};
    use sessionkit::{EncryptedStore, RedisStore};
    use sessionkit_tests::redis_server::{unique_prefix, RedisCluster};

    fn store(test: &str) -> EncryptedStore<RedisStore> {
        let inner = RedisStore::cluster_builder(RedisCluster::shared().urls())
            .prefix(unique_prefix(test))
            .build()
            .expect("store");
        EncryptedStore::new(inner, keys(KEY_A))
    }

    mod contract {
        sessionkit_tests::all_store_contract_cases!(async { super::store("enc-cluster-contract") });
    }

    mod acceptance {
        sessionkit_tests::acceptance_suite!(async { super::store("enc-cluster-acceptance") });
    }
}

mod postgres {
    use super::{keys, KEY_A};
    use sessionkit::{EncryptedStore, PostgresStore};
    use sessionkit_tests::postgres_server::{unique_table, PostgresServer};

    async fn store(test: &str) -> EncryptedStore<PostgresStore> {
        let inner = PostgresStore::builder(PostgresServer::shared().url())
            .table(unique_table(test))
            .connect()
            .await
            .expect("store");
        EncryptedStore::new(inner, keys(KEY_A))
    }

    mod contract {
        sessionkit_tests::all_store_contract_cases!(super::store("enc_contract"));
    }

    mod acceptance {
        sessionkit_tests::acceptance_suite!(super::store("enc_acceptance"));
    }
}

fn cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

fn field(loaded: &Loaded, name: &str) -> Option<Vec<u8>> {
    match loaded {
        Loaded::Session(record) => record.fields.get(name).map(|v| v.to_vec()),
        other => panic!("expected a session, got {other:?}"),
    }
}

/// Through the wrapper the value reads back; in the memory store under it
/// the bytes are sealed, name the key, and contain no plaintext.
#[tokio::test]
async fn the_inner_store_holds_no_plaintext() {
    let raw = Arc::new(MemoryStore::new());
    let keyring = keys(KEY_A);
    let store = EncryptedStore::new(Arc::clone(&raw), keyring.clone());
    let id = sid("plain");
    let value: &'static [u8] = SECRET.as_bytes();
    assert_eq!(
        store
            .write(&create(&id, T, &[("name", value)]))
            .await
            .expect("write"),
        Written::Done
    );
    assert_eq!(
        field(&store.load(&id, T).await.expect("load"), "name"),
        Some(value.to_vec())
    );
    let stored = field(&raw.load(&id, T).await.expect("load"), "name").expect("a field");
    assert!(
        !stored.windows(value.len()).any(|w| w == value),
        "plaintext in the store"
    );
    assert_eq!(stored[0], 1, "the format version");
    assert_eq!(stored[1..5], keyring.primary_id().to_bytes(), "the key id");
    assert_eq!(stored.len(), value.len() + 21);
}

/// The same through the session manager on a real Redis, read back with
/// `HGETALL`: neither the value nor the raw id appears anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_plaintext() {
    let server = RedisServer::shared();
    let prefix = unique_prefix("enc-raw");
    let inner = RedisStore::builder(server.url())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let manager = SessionManager::<Profile>::new(EncryptedStore::new(inner, keys(KEY_A)));
    let s = manager.create().expect("id");
    s.set(NAME, SECRET.into());
    s.set(VISITS, 7);
    s.save().await.expect("save");
    let sid = s.id().to_string();
    request(&manager, &cookie(&sid), |s| assert_eq!(s.get(NAME), SECRET))
        .await
        .expect("load");

    let keys = lines(&server.cli(&["KEYS", &format!("{prefix}*")]));
    assert_eq!(keys.len(), 1, "{keys:?}");
    // `--no-raw`: redis-cli escapes the sealed bytes (the helper reads UTF-8).
    let dump = server.cli(&["--no-raw", "HGETALL", &keys[0]]);
    assert!(dump.contains("name"), "field names stay in clear: {dump}");
    assert!(!dump.contains(SECRET), "plaintext in Redis: {dump}");
    assert!(!dump.contains(&sid), "raw id in Redis");
    assert_eq!(
        server.cli(&["HSTRLEN", &keys[0], "visits"]),
        "22",
        "one byte of MessagePack, sealed: 21 bytes more"
    );
}

/// Rotation at the store level: sealed under A; with the keyring [B, A] it
/// opens, and a conditional read-modify-write (whose expectation the
/// wrapper seals under B) still applies, leaving the value sealed under B;
/// a field the write did not touch stays under A until its own next write.
/// With [B] alone, a session sealed under A is no longer readable.
#[tokio::test]
async fn rotation_reseals_on_the_next_write_and_a_removed_key_ends_sessions() {
    let raw = Arc::new(MemoryStore::new());
    let (a, b) = (keys(KEY_A), keys(KEY_B));
    let before = EncryptedStore::new(Arc::clone(&raw), a.clone());
    let rotated = EncryptedStore::new(Arc::clone(&raw), keys(&format!("{KEY_B},{KEY_A}")));
    let after = EncryptedStore::new(Arc::clone(&raw), b.clone());

    let id = sid("rotate");
    let untouched = sid("untouched");
    before
        .write(&create(&id, T, &[("n", b"1"), ("other", b"x")]))
        .await
        .expect("write");
    before
        .write(&create(&untouched, T, &[("n", b"1")]))
        .await
        .expect("write");

    let loaded = rotated.load(&id, T + 1).await.expect("load");
    assert_eq!(field(&loaded, "n"), Some(b"1".to_vec()), "a fallback opens");
    let rmw = update(&id, T + 2, &[("n", b"2")], &[], &[("n", Some(b"1"))]);
    assert_eq!(
        rotated.write(&rmw).await.expect("write"),
        Written::Done,
        "an expectation sealed under the new key matches a value sealed under the old one"
    );
    let stale = update(&id, T + 3, &[("n", b"9")], &[], &[("n", Some(b"1"))]);
    let Written::Conflict(record) = rotated.write(&stale).await.expect("write") else {
        panic!("a real conflict stays a conflict")
    };
    assert_eq!(
        record.fields.get("n").map(|v| v.to_vec()),
        Some(b"2".to_vec())
    );

    let held = raw.load(&id, T + 4).await.expect("load");
    let n = field(&held, "n").expect("n");
    assert_eq!(n[1..5], b.primary_id().to_bytes(), "re-sealed under B");
    let other = field(&held, "other").expect("other");
    assert_eq!(
        other[1..5],
        a.primary_id().to_bytes(),
        "not written: still A"
    );

    assert_eq!(
        after.load(&untouched, T + 5).await.expect("load"),
        Loaded::Absent,
        "sealed under a removed key: treated as absent"
    );
    assert_eq!(
        after.load(&id, T + 5).await.expect("load"),
        Loaded::Absent,
        "one field still under the removed key is enough"
    );
    let rewrite = update(
        &id,
        T + 6,
        &[("other", b"y")],
        &[],
        &[("other", Some(b"x"))],
    );
    assert_eq!(
        after.write(&rewrite).await.expect("write"),
        Written::Gone,
        "a conflict record that does not open: the session is gone"
    );
}

/// Rotation end to end through the manager on Redis: a session made under
/// A is served and counted on with [B, A] (and its counter comes back
/// sealed under B); with [B] alone it is a fresh session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_through_the_manager_on_redis() {
    let server = RedisServer::shared();
    let prefix = unique_prefix("enc-rotate");
    let inner = RedisStore::builder(server.url())
        .prefix(prefix.clone())
        .build()
        .expect("store");
    let manager =
        |list: &str| SessionManager::<Profile>::new(EncryptedStore::new(inner.clone(), keys(list)));
    let old = manager(KEY_A);
    let s = old.create().expect("id");
    s.set(NAME, "ada".into());
    s.set(VISITS, 1);
    s.save().await.expect("save");
    let sid = s.id().to_string();

    let rotated = manager(&format!("{KEY_B},{KEY_A}"));
    request(&rotated, &cookie(&sid), |s| {
        assert_eq!(s.get(NAME), "ada", "opens under the fallback");
        s.update(VISITS, |v| *v += 1);
    })
    .await
    .expect("request");
    request(&rotated, &cookie(&sid), |s| assert_eq!(s.get(VISITS), 2))
        .await
        .expect("request");

    let key = lines(&server.cli(&["KEYS", &format!("{prefix}*")]));
    assert_eq!(key.len(), 1, "{key:?}");
    let id_b = keys(KEY_B).primary_id().to_string();
    let raw = inner
        .load(&SessionId::parse(&sid).expect("id"), SystemClock.now_ms())
        .await
        .expect("load");
    let visits = field(&raw, "visits").expect("visits");
    let name = field(&raw, "name").expect("name");
    assert_eq!(
        visits[1..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        id_b,
        "the counter was re-sealed under B"
    );
    assert_ne!(
        name[1..5],
        visits[1..5],
        "the name was not written: still A"
    );

    let removed = manager(KEY_B);
    request(&removed, &cookie(&sid), |s| {
        assert_eq!(s.get(NAME), "", "a fresh session");
        assert_eq!(s.get(VISITS), 0);
    })
    .await
    .expect("request");
}

/// Values that do not open — tampered with, or written in clear before the
/// wrapper was installed — make the session absent, so the request gets a
/// fresh session; each such load logs one warning that names no id, value
/// or key.
#[test]
fn sessions_that_do_not_open_are_absent_and_logged_without_secrets() {
    let captured = LogCapture::default();
    let subscriber = captured.subscriber(tracing::Level::DEBUG);
    let raw = Arc::new(MemoryStore::new());
    let store = EncryptedStore::new(Arc::clone(&raw), keys(KEY_A));
    let (tampered, in_clear) = (sid("tampered"), sid("in-clear"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let value: &'static [u8] = SECRET.as_bytes();
            store
                .write(&create(&tampered, T, &[("name", value)]))
                .await
                .expect("write");
            let Loaded::Session(record) = raw.load(&tampered, T).await.expect("load") else {
                panic!("stored")
            };
            let mut flipped = record.fields.get("name").expect("name").to_vec();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            let flipped: &'static [u8] = Vec::leak(flipped);
            raw.write(&update(&tampered, T + 1, &[("name", flipped)], &[], &[]))
                .await
                .expect("tamper");
            raw.write(&create(&in_clear, T, &[("name", value)]))
                .await
                .expect("write in clear");

            for id in [&tampered, &in_clear] {
                assert_eq!(store.load(id, T + 2).await.expect("load"), Loaded::Absent);
            }
            let manager = SessionManager::<Profile>::new(store.clone());
            let (session, _) = request(&manager, &cookie(tampered.as_str()), |s| {
                assert_eq!(s.get(NAME), "", "a fresh session");
            })
            .await
            .expect("a request with a session that does not open still succeeds");
            assert_ne!(session.id().as_str(), tampered.as_str(), "a new id");
        });
    });
    let logged = captured.text();
    let warnings: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("could not be opened with any key of the keyring"))
        .collect();
    assert_eq!(warnings.len(), 3, "one per load: {logged}");
    assert!(warnings.iter().all(|l| l.contains("WARN")), "{logged}");
    for secret in [SECRET, tampered.as_str(), in_clear.as_str(), KEY_A, "QUFB"] {
        assert!(!logged.contains(secret), "{secret} in the log: {logged}");
    }
}

/// The same on PostgreSQL: the field rows hold sealed bytes (hex-encoded by
/// the query), never the plaintext's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_plaintext() {
    let server = PostgresServer::shared();
    let table = unique_table("enc_raw");
    let inner = PostgresStore::builder(server.url())
        .table(table.clone())
        .connect()
        .await
        .expect("store");
    let manager = SessionManager::<Profile>::new(EncryptedStore::new(inner, keys(KEY_A)));
    let s = manager.create().expect("id");
    s.set(NAME, SECRET.into());
    s.save().await.expect("save");
    request(&manager, &cookie(s.id().as_str()), |s| {
        assert_eq!(s.get(NAME), SECRET);
    })
    .await
    .expect("load");

    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let rows = server.psql(&format!(
        "SELECT name || '=' || encode(value, 'hex') FROM \"{table}_fields\""
    ));
    let (name, value) = rows.split_once('=').expect("one field row");
    assert_eq!(name, "name", "field names stay in clear");
    assert!(
        !value.contains(&hex(SECRET.as_bytes())),
        "plaintext in PostgreSQL"
    );
    assert!(
        value.starts_with(&format!("01{}", keys(KEY_A).primary_id())),
        "version and key id: {value}"
    );
    let dump = server.psql(&format!(
        "SELECT row_to_json(t)::text FROM \"{table}\" AS t UNION ALL \
         SELECT row_to_json(f)::text FROM \"{table}_fields\" AS f"
    ));
    assert!(!dump.contains(SECRET), "plaintext in PostgreSQL: {dump}");
}

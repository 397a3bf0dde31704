//! `rediss://`: the store against a TLS-only `redis-server` whose certificate
//! is signed by a throwaway CA.

mod redis_common;

use redis_common::fast;
use sessionkit::store::StoreError;
use sessionkit::{RedisStore, SessionError, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::redis_server::RedisServer;
use sessionkit_tests::support::{Profile, TestRequest, NAME};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_tls_with_a_private_ca() {
    let server = RedisServer::start_tls();
    let store = RedisStore::builder(server.tls_url())
        .tls_root_certificate(server.ca_pem())
        .build()
        .expect("store");
    let manager = SessionManager::<Profile>::new(store.clone());
    let (s, update) = request(&manager, &TestRequest::new(), |s| s.set(NAME, "ada".into()))
        .await
        .expect("request over TLS");
    assert!(update.set_cookie.is_some());
    let loaded = manager
        .load_by_id(s.id().as_str())
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(loaded.get(NAME), "ada");
    assert_eq!(server.cli(&["EXISTS", &store.key_for(&s.id())]), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let server = RedisServer::start_tls();
    // The system trust store does not know the test CA.
    let store = fast(RedisStore::builder(server.tls_url()));
    let manager = SessionManager::<Profile>::new(store);
    let result = manager.load_by_id("0123456789abcdef0123").await;
    assert!(matches!(result, Err(SessionError::Store(_))), "{result:?}");
    // Plain text to a TLS port fails too, rather than hanging.
    let plain = fast(RedisStore::builder(format!(
        "redis://127.0.0.1:{}",
        server.port()
    )));
    let manager = SessionManager::<Profile>::new(plain);
    let result = manager.load_by_id("0123456789abcdef0123").await;
    assert!(
        matches!(
            result,
            Err(SessionError::Store(
                StoreError::Unavailable(_) | StoreError::Timeout(_)
            ))
        ),
        "{result:?}"
    );
}

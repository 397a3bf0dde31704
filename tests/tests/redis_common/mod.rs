//! What the single-node and cluster Redis tests share: a session type with
//! many fields, and checks written once for both topologies.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::clock::{Clock, SystemClock};
use sessionkit::codec::{decode_value, encode_value, DecodeError, EncodeError, Field, FieldInfo};
use sessionkit::id::SessionId;
use sessionkit::store::{DynSessionStore, SessionStore};
use sessionkit::store::{Loaded, Meta, Written};
use sessionkit::{Config, RedisStore, SessionData, SessionManager};
use sessionkit_tests::acceptance::request;
pub use sessionkit_tests::store_contract::{create, update as change};
use sessionkit_tests::support::TestRequest;

/// How many fields [`Wide`] has.
pub const WIDE: usize = 12;

/// Twelve counters, each its own stored field (`f0` … `f11`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Wide {
    pub f: [u32; WIDE],
}

macro_rules! wide_fields {
    ($($i:literal),*) => {
        /// One typed key per field of [`Wide`].
        pub const F: [Field<Wide, u32>; WIDE] = [$(Field::new($i, |w| &w.f[$i], |w| &mut w.f[$i])),*];
        impl SessionData for Wide {
            const FIELDS: &'static [FieldInfo] = &[$(FieldInfo::new(concat!("f", $i), concat!("f", $i))),*];
            fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self.f.get(index) {
                    Some(v) => encode_value(v, out),
                    None => Err(EncodeError::no_field(index)),
                }
            }
            fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
                match self.f.get_mut(index) {
                    Some(v) => { *v = decode_value(bytes)?; Ok(()) }
                    None => Err(DecodeError::no_field(index)),
                }
            }
            fn reset_field(&mut self, index: usize) {
                if let Some(v) = self.f.get_mut(index) { *v = 0; }
            }
        }
    };
}
wide_fields!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);

pub fn now() -> u64 {
    SystemClock.now_ms()
}

pub fn id(n: u32) -> SessionId {
    SessionId::parse(&format!("redis-test-session-{n:08}")).expect("valid id")
}

/// A manager without auto-renewal (ids stay put) over `store`.
pub fn steady_manager<T: SessionData>(store: RedisStore) -> SessionManager<T> {
    SessionManager::<T>::builder(store)
        .config(
            Config::builder()
                .disable_auto_renew(true)
                .build()
                .expect("config"),
        )
        .build()
        .expect("manager")
}

pub fn cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

/// Many requests of one session at once, each changing only its own field,
/// round after round: every write must survive.
pub async fn concurrent_requests_keep_every_field(store: RedisStore) {
    let manager = steady_manager::<Wide>(store);
    let first = manager.create().expect("id");
    // Not a default value: a session holding only defaults is never stored.
    first.set(F[0], 100);
    first.save().await.expect("save");
    let sid = first.id().to_string();
    let rounds = 5;
    for _ in 0..rounds {
        let tasks: Vec<_> = (0..WIDE)
            .map(|i| {
                let manager = manager.clone();
                let sid = sid.clone();
                tokio::spawn(async move {
                    request(&manager, &cookie(&sid), |s| {
                        assert!(!s.fresh(), "the session must load");
                        s.update(F[i], |v| *v += 1);
                    })
                    .await
                    .map(drop)
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("request");
        }
    }
    let loaded = manager
        .load_by_id(&sid)
        .await
        .expect("load")
        .expect("stored");
    let mut expected = [rounds; WIDE];
    expected[0] += 100;
    assert_eq!(loaded.snapshot().f, expected, "a write was lost");
}

/// Every write sets the key's TTL to the session's time left: a create or
/// a metadata change sets it, a plain update only ever extends it, a load
/// leaves it alone.
pub async fn ttl_follows_the_session(store: &RedisStore, pttl: impl Fn(&str) -> i64) {
    let sid = id(1);
    let key = store.key_for(&sid);
    let t = now();
    // Idle 60 s, absolute deadline in 20 s: the deadline wins.
    let mut w = create(&sid, t, &[("a", b"\x01")]);
    w.meta = Meta::new(t, 60_000, Some(20_000));
    w.ttl_ms = w.meta.ttl_ms(t);
    assert_eq!(store.write(&w).await.expect("create"), Written::Done);
    let ttl = pttl(&key);
    assert!((15_000..=20_000).contains(&ttl), "PTTL {ttl} after create");
    // A plain update with a shorter TTL does not shorten it.
    let mut u = change(&sid, now(), &[("b", b"\x02")], &[], &[]);
    u.ttl_ms = 5_000;
    assert_eq!(store.write(&u).await.expect("update"), Written::Done);
    let ttl = pttl(&key);
    assert!(
        (15_000..=20_000).contains(&ttl),
        "PTTL {ttl} after a plain update"
    );
    // A metadata change (a shorter idle timeout) sets it.
    let mut m = change(&sid, now(), &[], &[], &[]);
    m.meta_changed = true;
    m.meta.idle_timeout_ms = 5_000;
    m.ttl_ms = 5_000;
    assert_eq!(store.write(&m).await.expect("meta"), Written::Done);
    let ttl = pttl(&key);
    assert!(
        (1..=5_000).contains(&ttl),
        "PTTL {ttl} after a metadata change"
    );
    // A load is a pure read.
    assert!(matches!(
        store.load(&sid, now()).await.expect("load"),
        Loaded::Session(_)
    ));
    assert!(pttl(&key) <= 5_000, "a load does not touch the TTL");
    // A touch extends it.
    let mut touch = change(&sid, now(), &[], &[], &[]);
    touch.ttl_ms = 10_000;
    assert_eq!(store.write(&touch).await.expect("touch"), Written::Done);
    let ttl = pttl(&key);
    assert!((8_000..=10_000).contains(&ttl), "PTTL {ttl} after touch");
    store.delete(&sid).await.expect("delete");
    assert_eq!(pttl(&key), -2, "deleted");
}

/// Nothing under `prefix` contains the raw id; the key is the hashed one.
pub fn assert_hashed(store: &RedisStore, keys: &[String], sid: &str) {
    let expected = store.key_for(&SessionId::parse(sid).expect("id"));
    assert_eq!(keys, [expected], "exactly the hashed key");
    assert!(
        keys.iter().all(|k| !k.contains(sid)),
        "raw id in a key: {keys:?}"
    );
}

pub fn arc(store: RedisStore) -> Arc<dyn DynSessionStore> {
    Arc::new(store)
}

/// A short timeout store configuration for fault tests.
pub fn fast(builder: sessionkit::RedisStoreBuilder) -> RedisStore {
    builder
        .connect_timeout(Duration::from_millis(300))
        .wait_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .expect("store")
}

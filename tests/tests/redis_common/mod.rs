//! What the single-node and cluster Redis tests share: a session type with
//! many fields, and checks written once for both topologies.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::{
    decode_value, encode_value, Clock, Config, DecodeError, EncodeError, Field, FieldInfo, Meta,
    RedisStore, SessionData, SessionId, SessionManager, SessionStore, SystemClock, Update,
};
use sessionkit_tests::acceptance::request;
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

pub fn update(meta: Meta, set: &[(&'static str, &'static [u8])], replace: bool) -> Update {
    Update {
        meta,
        set: set.iter().map(|(n, v)| (*n, v.to_vec().into())).collect(),
        remove: vec![],
        replace,
    }
}

pub fn cookie(id: &str) -> TestRequest {
    TestRequest::new().cookie("session_id", id)
}

/// Many requests of one session at once, each changing only its own field,
/// round after round: every write must survive.
pub async fn concurrent_requests_keep_every_field(store: RedisStore) {
    let manager = SessionManager::<Wide>::builder(store)
        .config(
            Config::builder()
                .disable_auto_renew(true)
                .build()
                .expect("config"),
        )
        .build()
        .expect("manager");
    let first = manager.create().expect("id");
    first.set(F[0], 0);
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
    assert_eq!(loaded.snapshot().f, [rounds; WIDE], "a write was lost");
}

/// Every write sets the key's TTL to the session's time left; a load slides it.
pub async fn ttl_follows_the_session(store: &RedisStore, pttl: impl Fn(&str) -> i64) {
    let sid = id(1);
    let key = store.key_for(&sid);
    let t = now();
    // Idle 60 s, absolute deadline in 20 s: the deadline wins.
    let meta = Meta::new(t, 60_000, Some(20_000));
    store
        .save(&sid, &update(meta, &[("a", b"\x01")], true))
        .await
        .expect("save");
    let ttl = pttl(&key);
    assert!((15_000..=20_000).contains(&ttl), "PTTL {ttl} after save");
    // A partial save sets it again (idle 5 s now wins).
    let mut short = meta;
    short.idle_timeout_ms = 5_000;
    store
        .save(&sid, &update(short, &[("b", b"\x02")], false))
        .await
        .expect("save");
    let ttl = pttl(&key);
    assert!((1..=5_000).contains(&ttl), "PTTL {ttl} after partial save");
    // A load refreshes it from the stored idle timeout.
    store
        .load(&sid, now())
        .await
        .expect("load")
        .expect("stored");
    let ttl = pttl(&key);
    assert!((3_000..=5_000).contains(&ttl), "PTTL {ttl} after load");
    // A touch too.
    let mut long = short;
    long.idle_timeout_ms = 10_000;
    long.last_access = now();
    store.touch(&sid, &long).await.expect("touch");
    let ttl = pttl(&key);
    assert!((8_000..=10_000).contains(&ttl), "PTTL {ttl} after touch");
    store.delete(&sid).await.expect("delete");
    assert_eq!(pttl(&key), -2, "deleted");
}

/// The store-level contract: partial updates, load returns the record before
/// its touch, rotate and delete.
pub async fn store_round_trip(store: &RedisStore) {
    let a = id(10);
    let t = now();
    store
        .save(
            &a,
            &update(
                Meta::new(t, 60_000, None),
                &[("x", b"1"), ("y", b"2")],
                true,
            ),
        )
        .await
        .expect("save");
    let mut partial = update(
        Meta {
            last_access: t + 5,
            ..Meta::new(t, 60_000, None)
        },
        &[("y", b"3")],
        false,
    );
    partial.remove.push("x");
    store.save(&a, &partial).await.expect("partial");
    let rec = store.load(&a, t + 10).await.expect("load").expect("stored");
    assert!(rec.fields.get("x").is_none());
    assert_eq!(rec.fields.get("y").expect("y").as_ref(), b"3");
    assert_eq!(
        rec.fields.len(),
        1,
        "metadata is not a field: {:?}",
        rec.fields
    );
    assert_eq!(
        rec.meta.last_access,
        t + 5,
        "load returns the record before its touch"
    );
    assert_eq!(rec.meta.created_at, t);
    assert_eq!(rec.meta.absolute_deadline, None);
    let rec = store.load(&a, t + 11).await.expect("load").expect("stored");
    assert_eq!(rec.meta.last_access, t + 10, "the previous load touched it");

    // An expired record is returned as stored and not touched.
    let late = t + 11 + 60_000;
    let rec = store.load(&a, late).await.expect("load").expect("stored");
    assert!(rec.meta.is_expired(late));
    let rec = store
        .load(&a, late + 1)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(
        rec.meta.last_access,
        t + 11,
        "an expired session is not revived"
    );

    let b = id(11);
    store
        .rotate(
            &a,
            &b,
            &update(Meta::new(t + 20, 60_000, None), &[("y", b"3")], true),
        )
        .await
        .expect("rotate");
    assert!(store.load(&a, t + 21).await.expect("load").is_none());
    assert_eq!(
        store
            .load(&b, t + 21)
            .await
            .expect("load")
            .expect("moved")
            .fields
            .get("y")
            .map(|v| v.to_vec()),
        Some(b"3".to_vec())
    );
    store.delete(&b).await.expect("delete");
    assert!(store.load(&b, t + 22).await.expect("load").is_none());
    store
        .delete(&b)
        .await
        .expect("deleting an absent session is fine");
}

/// A partial save racing a delete (logout in another request) does not
/// bring back a fragment of the session.
pub async fn partial_save_does_not_resurrect(store: &RedisStore) {
    let a = id(20);
    let t = now();
    store
        .save(
            &a,
            &update(Meta::new(t, 60_000, None), &[("x", b"1")], true),
        )
        .await
        .expect("save");
    store.delete(&a).await.expect("delete");
    store
        .save(
            &a,
            &update(Meta::new(t, 60_000, None), &[("y", b"2")], false),
        )
        .await
        .expect("save");
    assert!(store.load(&a, t + 1).await.expect("load").is_none());
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

pub fn arc(store: RedisStore) -> Arc<dyn SessionStore> {
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

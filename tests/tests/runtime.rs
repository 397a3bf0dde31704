//! Runtime guarantees that do not depend on the store.

use std::sync::Arc;

use sessionkit::clock::ManualClock;
use sessionkit::id::GenerateError;
use sessionkit::{MemoryStore, Session, SessionError, SessionManager};
use sessionkit_tests::acceptance::{request, T0};
use sessionkit_tests::support::{Profile, TestRequest, NAME};

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Session<Profile>>();
    assert_send_sync::<SessionManager<Profile>>();
    assert_send_sync::<sessionkit::adapter::PendingSession<Profile>>();
}

#[tokio::test]
async fn failing_random_source_fails_the_request() {
    let broken = || -> Result<String, GenerateError> {
        Err(GenerateError::Custom("entropy source unavailable".into()))
    };
    let m = SessionManager::<Profile>::builder(MemoryStore::new())
        .id_generator(broken)
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    // No fallback: a new session cannot be created.
    let err = request(&m, &TestRequest::new(), |_| {}).await.unwrap_err();
    assert!(matches!(err, SessionError::Generate(_)), "{err}");
    assert!(err.to_string().contains("entropy source unavailable"));
    assert!(matches!(m.create(), Err(SessionError::Generate(_))));
}

#[tokio::test]
async fn generator_output_is_validated() {
    let predictable = || -> Result<String, GenerateError> { Ok("1".into()) };
    let m = SessionManager::<Profile>::builder(MemoryStore::new())
        .id_generator(predictable)
        .build()
        .unwrap();
    assert!(matches!(
        m.create(),
        Err(SessionError::Generate(GenerateError::Invalid(_)))
    ));
}

#[tokio::test]
async fn session_moves_into_spawned_tasks() {
    let m = SessionManager::<Profile>::new(MemoryStore::new());
    let s = m.create().unwrap();
    let s2 = s.clone();
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        s2.set(NAME, "from a task".into());
        s2.save().await
    })
    .await
    .unwrap()
    .unwrap();
    let loaded = m.load_by_id(s.id().as_str()).await.unwrap().unwrap();
    assert_eq!(loaded.get(NAME), "from a task");
    let _ = Arc::new(s);
}

/// A hung store never hangs a request: `TimeoutStore` turns it into a store
/// error, and nothing is lost once the store answers again. Tokio's paused
/// clock makes the 10-minute hang instant.
#[tokio::test(start_paused = true)]
async fn slow_store_times_out_and_recovers() {
    use std::time::Duration;

    use sessionkit::store::StoreError;
    use sessionkit::timeout::TimeoutStore;
    use sessionkit_tests::support::{RecordingStore, VISITS};

    let slow = RecordingStore::new(MemoryStore::new());
    let store = TimeoutStore::new(slow.clone(), Duration::from_millis(200));
    let m = SessionManager::<Profile>::new(store);
    let s = m.create().unwrap();
    s.set(VISITS, 1);
    s.save().await.unwrap();
    let id = s.id().to_string();

    slow.set_delay(Duration::from_secs(600));
    let err = m.load_by_id(&id).await.unwrap_err();
    assert!(
        matches!(err, SessionError::Store(StoreError::Timeout(limit)) if limit == Duration::from_millis(200)),
        "{err}"
    );
    s.set(VISITS, 2);
    assert!(matches!(
        s.save().await,
        Err(SessionError::Store(StoreError::Timeout(_)))
    ));

    slow.set_delay(Duration::ZERO);
    s.save().await.unwrap();
    assert_eq!(m.load_by_id(&id).await.unwrap().unwrap().get(VISITS), 2);
}

/// A store that only implements the three required methods.
struct Minimal(MemoryStore);

impl sessionkit::store::SessionStore for Minimal {
    async fn load(
        &self,
        id: &sessionkit::id::SessionId,
        now: u64,
    ) -> Result<sessionkit::store::Loaded, sessionkit::store::StoreError> {
        self.0.load(id, now).await
    }
    async fn write(
        &self,
        write: &sessionkit::store::Write,
    ) -> Result<sessionkit::store::Written, sessionkit::store::StoreError> {
        self.0.write(write).await
    }
    async fn delete(
        &self,
        id: &sessionkit::id::SessionId,
    ) -> Result<(), sessionkit::store::StoreError> {
        self.0.delete(id).await
    }
}

/// A store without the principal index keeps working for sessions, and
/// says so clearly when asked to list or revoke a user's sessions.
#[tokio::test]
async fn a_store_without_an_index_says_so() {
    use sessionkit::store::{PrincipalIndex as _, SessionStore as _};
    use sessionkit_tests::support::{Account, USER};
    let m = SessionManager::<Account>::builder(Minimal(MemoryStore::new()))
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    let (s, _) = request(&m, &TestRequest::new(), |s| s.set(USER, Some(1)))
        .await
        .unwrap();
    assert!(m.load_by_id(s.id().as_str()).await.unwrap().is_some());
    for error in [
        m.list_sessions(&1u64, None).await.map(drop).unwrap_err(),
        m.revoke_all_sessions(&1u64).await.map(drop).unwrap_err(),
    ] {
        assert!(
            matches!(
                error,
                SessionError::Store(sessionkit::store::StoreError::Unsupported(_))
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains("keeps no principal index"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("implement sessionkit::store::PrincipalIndex"),
            "{error}"
        );
    }
    // Layers have an index exactly when their inner store has one, and
    // forward it.
    let bare = sessionkit::timeout::TimeoutStore::new(
        Minimal(MemoryStore::new()),
        std::time::Duration::from_secs(1),
    );
    assert!(bare.principal_index().is_none());
    let shared: Arc<dyn sessionkit::store::DynSessionStore> = Arc::new(bare);
    assert!(shared.principal_index().is_none());
    let wrapped = sessionkit::timeout::TimeoutStore::new(
        MemoryStore::new(),
        std::time::Duration::from_secs(1),
    );
    let principal = sessionkit::store::Principal::of(&1u64).unwrap();
    assert!(wrapped
        .principal_sessions(&principal, T0)
        .await
        .unwrap()
        .is_empty());
    assert!(wrapped.principal_index().is_some());
    let shared: Arc<dyn sessionkit::store::DynSessionStore> = Arc::new(wrapped);
    assert!(shared
        .principal_sessions(&principal, T0)
        .await
        .unwrap()
        .is_empty());
}

/// The memory store forgets the index entries of sessions the cache drops
/// (deleted, evicted), so abandoned users leave nothing behind; anonymous
/// sessions are evicted before signed-in ones.
#[tokio::test]
async fn memory_index_forgets_dropped_sessions() {
    use sessionkit_tests::support::{Account, USER};
    let store = MemoryStore::with_capacity(4);
    let m = SessionManager::<Account>::builder(store.clone())
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for user in 0..3u64 {
        let s = m.create().unwrap();
        s.set(USER, Some(user));
        s.save().await.unwrap();
        ids.push(s.id());
    }
    store.sweep();
    assert_eq!(store.indexed_sessions(), 3);
    m.delete_by_id(ids[0].as_str()).await.unwrap();
    store.sweep();
    assert_eq!(store.indexed_sessions(), 2, "deleted");
    // Anonymous sessions never push signed-in ones out (they go first)…
    for _ in 0..20 {
        let s = m.create().unwrap();
        s.set(sessionkit_tests::support::DEVICE, "x".into());
        s.save().await.unwrap();
        store.sweep();
    }
    assert_eq!(store.indexed_sessions(), 2, "signed-in sessions kept");
    // …but newer signed-in sessions of other users do, and the evicted
    // ones leave the index.
    for user in 100..120u64 {
        let s = m.create().unwrap();
        s.set(USER, Some(user));
        s.save().await.unwrap();
        store.sweep();
    }
    for user in [1u64, 2] {
        assert!(
            m.list_sessions(&user, None).await.unwrap().is_empty(),
            "evicted, so no longer listed"
        );
    }
    assert!(
        store.indexed_sessions() <= 4,
        "{}",
        store.indexed_sessions()
    );
}

/// How many `Tracked` values were deserialized (one test uses it).
static DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A field value that counts its decodes.
#[derive(Default, Clone, Debug, PartialEq, serde::Serialize)]
struct Tracked(Vec<String>);

impl<'de> serde::Deserialize<'de> for Tracked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Vec::<String>::deserialize(d).map(Tracked)
    }
}

#[derive(sessionkit::SessionData, Default, Clone, Debug)]
struct Lazy {
    cart: Tracked,
    visits: u32,
}

/// Fields are decoded when first used: a request that only counts visits
/// never decodes the cart, and the cart is kept as stored. Whole-struct
/// access decodes everything.
#[tokio::test]
async fn a_request_decodes_only_the_fields_it_uses() {
    use std::sync::atomic::Ordering::SeqCst;
    let m = SessionManager::<Lazy>::builder(MemoryStore::new())
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    let s = m.create().unwrap();
    s.set_cart(Tracked(vec!["fig".into(), "pear".into()]));
    s.set_visits(1);
    s.save().await.unwrap();
    let id = s.id();

    let before = DECODED.load(SeqCst);
    for _ in 0..3 {
        let s = m.load_by_id(id.as_str()).await.unwrap().unwrap();
        s.update_visits(|v| *v += 1);
        s.save().await.unwrap();
    }
    assert_eq!(DECODED.load(SeqCst), before, "the cart was never decoded");

    let s = m.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(s.visits(), 4);
    assert_eq!(s.cart(), Tracked(vec!["fig".into(), "pear".into()]));
    assert_eq!(
        DECODED.load(SeqCst),
        before + 1,
        "decoded once, on first use"
    );
    let _ = s.cart();
    assert_eq!(DECODED.load(SeqCst), before + 1, "and not again");
    let s = m.load_by_id(id.as_str()).await.unwrap().unwrap();
    assert_eq!(s.snapshot().cart.0.len(), 2);
    assert_eq!(
        DECODED.load(SeqCst),
        before + 2,
        "a snapshot decodes every field"
    );
}

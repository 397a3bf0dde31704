//! The session lifecycle, cookies and no-lost-updates over HTTP through
//! actix-web, on the memory store, one Redis and the three-master Cluster.
//! (The races of renewal, logout and login run for both adapters in the
//! conformance suite, `tests/src/conformance.rs`.)
//!
//! Concurrent requests are made deterministic with the `RecordingStore`
//! gates (requests held at the store's door until released), never with
//! sleeps tuned to timing.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::cookie::Cookie;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use futures_util::future::join_all;
use sessionkit::clock::ManualClock;
use sessionkit::id::SessionId;
use sessionkit::store::DynSessionStore;
use sessionkit::store::Loaded;
use sessionkit::{Config, SessionData, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};
use sessionkit_tests::support::{Call, RecordingStore};

const T0: u64 = 1_767_225_600_000;
const MIN: Duration = Duration::from_secs(60);

/// The shop's session.
#[derive(SessionData, Default, Clone, Debug, PartialEq)]
pub struct Shop {
    user_id: Option<u64>,
    visits: u32,
    cart: Vec<String>,
    blob: String,
}

/// What every closure saw, in order (for the replay test).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<u32>>>);

async fn visit(session: Session<Shop>, seen: web::Data<Seen>) -> HttpResponse {
    let seen = seen.get_ref().clone();
    let visits = session.update_visits(move |v| {
        seen.0.lock().unwrap().push(*v);
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(visits.to_string())
}

async fn set_visits(session: Session<Shop>, n: web::Path<u32>) -> HttpResponse {
    session.set_visits(n.into_inner());
    HttpResponse::Ok().finish()
}

async fn add(session: Session<Shop>, item: web::Path<String>) -> HttpResponse {
    let item = item.into_inner();
    let len = session.update_cart(move |cart| {
        cart.push(item.clone());
        cart.len()
    });
    HttpResponse::Ok().body(len.to_string())
}

async fn login(session: Session<Shop>) -> HttpResponse {
    session.regenerate().unwrap();
    session.set_user_id(Some(1));
    HttpResponse::Ok().body("in")
}

async fn remember(session: Session<Shop>) -> HttpResponse {
    session.regenerate().unwrap();
    session.set_user_id(Some(1));
    session.set_idle_timeout(30 * 24 * 60 * MIN);
    HttpResponse::Ok().body("in")
}

async fn logout(session: Session<Shop>) -> HttpResponse {
    session.reset().unwrap();
    HttpResponse::Ok().body("out")
}

async fn me(session: Session<Shop>) -> HttpResponse {
    match session.user_id() {
        Some(id) => HttpResponse::Ok().body(format!("{id}:{}", session.visits())),
        None => HttpResponse::Unauthorized().finish(),
    }
}

async fn read(session: Session<Shop>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}:{}", session.visits(), session.cart().join(",")))
}

async fn noop(session: Session<Shop>) -> HttpResponse {
    session.update_visits(|v| {
        if *v > 0 {
            *v += 1;
        }
    });
    HttpResponse::Ok().finish()
}

async fn fail(session: Session<Shop>) -> HttpResponse {
    session.set_visits(99);
    HttpResponse::InternalServerError().finish()
}

async fn fail_err(session: Session<Shop>) -> Result<HttpResponse, actix_web::Error> {
    session.set_visits(98);
    Err(actix_web::error::ErrorBadGateway("upstream down"))
}

async fn empty(session: Session<Shop>) -> HttpResponse {
    session.remove_visits();
    session.remove_cart();
    session.remove_user_id();
    session.remove_blob();
    HttpResponse::Ok().finish()
}

async fn blob(session: Session<Shop>, n: web::Path<usize>) -> HttpResponse {
    session.set_blob("x".repeat(n.into_inner()));
    HttpResponse::Ok().finish()
}

macro_rules! app {
    ($manager:expr) => {
        app!($manager, Seen::default())
    };
    ($manager:expr, $seen:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($seen))
                .wrap(SessionMiddleware::new($manager.clone()))
                .route("/visit", web::get().to(visit))
                .route("/set/{n}", web::post().to(set_visits))
                .route("/add/{item}", web::post().to(add))
                .route("/login", web::post().to(login))
                .route("/remember", web::post().to(remember))
                .route("/logout", web::post().to(logout))
                .route("/me", web::get().to(me))
                .route("/read", web::get().to(read))
                .route("/noop", web::get().to(noop))
                .route("/fail", web::get().to(fail))
                .route("/fail-err", web::get().to(fail_err))
                .route("/empty", web::post().to(empty))
                .route("/blob/{n}", web::post().to(blob)),
        )
        .await
    };
}

/// A recording store over `inner`, a manual clock and a manager.
fn setup(
    inner: Arc<dyn DynSessionStore>,
    config: Config,
) -> (RecordingStore, ManualClock, SessionManager<Shop>) {
    let rec = RecordingStore::new(inner);
    let clock = ManualClock::new(T0);
    let manager = second(&rec, &clock, config);
    (rec, clock, manager)
}

/// Another manager over the same store and clock: a second instance of the
/// app (commits of one session take turns only within one instance, so
/// races between instances are decided by the store alone).
fn second(rec: &RecordingStore, clock: &ManualClock, config: Config) -> SessionManager<Shop> {
    SessionManager::builder(rec.clone())
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn req(method: &str, path: &str, sid: Option<&str>) -> actix_http::Request {
    let mut r = match method {
        "POST" => TestRequest::post(),
        _ => TestRequest::get(),
    }
    .uri(path);
    if let Some(sid) = sid {
        r = r.cookie(Cookie::new("session_id", sid.to_owned()));
    }
    r.to_request()
}

fn cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    let mut cookies = res
        .response()
        .cookies()
        .filter(|c| c.name() == "session_id")
        .map(Cookie::into_owned);
    let first = cookies.next();
    assert!(cookies.next().is_none(), "one session cookie at most");
    first
}

fn sid<B>(res: &ServiceResponse<B>) -> String {
    cookie(res).expect("a session cookie").value().to_owned()
}

async fn text<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> String {
    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
}

async fn loaded(manager: &SessionManager<Shop>, id: &str) -> Option<Shop> {
    manager.load_by_id(id).await.unwrap().map(|s| s.snapshot())
}

macro_rules! http_cases {
    ($store:expr; $($case:ident),* $(,)?) => {$(
        #[actix_web::test]
        async fn $case() {
            let store = $store;
            super::$case(::std::sync::Arc::new(store)).await;
        }
    )*};
}

macro_rules! all_http_cases {
    ($store:expr) => {
        http_cases!($store;
            parallel_increments_all_count,
            parallel_cart_adds_keep_every_item,
            a_replayed_closure_sees_the_fresher_value,
            a_blind_set_then_an_update_compose,
            cookie_lives_as_long_as_the_session,
            remember_me_outlives_a_session_only_cookie,
            a_long_configured_idle_timeout_keeps_session_only_cookies,
            stale_ids_get_a_removal_cookie,
            failed_requests_persist_nothing,
            a_no_op_update_creates_nothing,
            an_oversized_stored_session_stays_readable,
        );
    };
}

async fn gated_burst<B>(
    rec: &RecordingStore,
    requests: Vec<impl std::future::Future<Output = ServiceResponse<B>>>,
) -> Vec<ServiceResponse<B>> {
    let n = requests.len();
    let loads = rec.gate_loads();
    let conductor = async {
        loads.arrived(n).await;
        rec.ungate();
        loads.open();
    };
    let (responses, ()) = futures_util::future::join(join_all(requests), conductor).await;
    responses
}

/// N requests that all loaded the same counter: the store ends at N.
pub async fn parallel_increments_all_count(store: Arc<dyn DynSessionStore>) {
    let (rec, _, manager) = setup(store, Config::default());
    let app = app!(manager);
    let a = sid(&test::call_service(&app, req("POST", "/set/1000", None)).await);
    let n = 16;
    let responses = gated_burst(
        &rec,
        (0..n)
            .map(|_| test::call_service(&app, req("GET", "/visit", Some(&a))))
            .collect(),
    )
    .await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(loaded(&manager, &a).await.unwrap().visits, 1000 + n);
}

/// Parallel adds to one cart keep every item.
pub async fn parallel_cart_adds_keep_every_item(store: Arc<dyn DynSessionStore>) {
    let (rec, _, manager) = setup(store, Config::default());
    let app = app!(manager);
    let a = sid(&test::call_service(&app, req("POST", "/add/zero", None)).await);
    let responses = gated_burst(
        &rec,
        (0..10)
            .map(|i| test::call_service(&app, req("POST", &format!("/add/item{i}"), Some(&a))))
            .collect(),
    )
    .await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    let mut cart = loaded(&manager, &a).await.unwrap().cart;
    cart.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("item{i}")).collect();
    expected.push("zero".into());
    expected.sort();
    assert_eq!(cart, expected);
}

/// Two requests load visits = 5; the second to commit replays its closure
/// on the first's result.
pub async fn a_replayed_closure_sees_the_fresher_value(store: Arc<dyn DynSessionStore>) {
    let (rec, _, manager) = setup(store, Config::default());
    let seen = Seen::default();
    let app = app!(manager, seen.clone());
    let a = sid(&test::call_service(&app, req("POST", "/set/5", None)).await);
    gated_burst(
        &rec,
        vec![
            test::call_service(&app, req("GET", "/visit", Some(&a))),
            test::call_service(&app, req("GET", "/visit", Some(&a))),
        ],
    )
    .await;
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen, [5, 5, 6], "both ran on 5; one replayed on 6");
    assert_eq!(loaded(&manager, &a).await.unwrap().visits, 7);
}

/// A blind `set_visits(100)` committed while an `update_visits(+1)` was in
/// flight: the update replays on top of it (101). The other order is last
/// writer wins: the set overwrites the increment.
pub async fn a_blind_set_then_an_update_compose(store: Arc<dyn DynSessionStore>) {
    let (rec, clock, manager) = setup(store, Config::default());
    let app = app!(manager);
    let other = app!(second(&rec, &clock, Config::default()));
    let a = sid(&test::call_service(&app, req("POST", "/set/5", None)).await);
    let gate = rec.gate_writes();
    let update = test::call_service(&app, req("GET", "/visit", Some(&a)));
    let set_first = async {
        gate.arrived(1).await;
        rec.ungate();
        test::call_service(&other, req("POST", "/set/100", Some(&a))).await;
        gate.open();
    };
    futures_util::future::join(update, set_first).await;
    assert_eq!(loaded(&manager, &a).await.unwrap().visits, 101);
    // Update first, then the blind set: the set wins.
    test::call_service(&app, req("GET", "/visit", Some(&a))).await;
    test::call_service(&app, req("POST", "/set/7", Some(&a))).await;
    assert_eq!(loaded(&manager, &a).await.unwrap().visits, 7);
}

/// The cookie's Max-Age after activity, a change, a long idle timeout, and
/// near the absolute deadline; re-sent whenever the server extends the session.
pub async fn cookie_lives_as_long_as_the_session(store: Arc<dyn DynSessionStore>) {
    let config = Config::builder()
        .idle_timeout(MIN)
        .cookie_expiration(MIN)
        .disable_auto_renew(true)
        .absolute_timeout(10 * MIN)
        .build()
        .unwrap();
    let (_, clock, manager) = setup(store, config);
    let app = app!(manager);
    let res = test::call_service(&app, req("GET", "/visit", None)).await;
    let a = sid(&res);
    assert_eq!(
        cookie(&res).unwrap().max_age(),
        Some(actix_web::cookie::time::Duration::seconds(60))
    );
    // Activity after the touch interval (a tenth of the idle timeout): the
    // server slides the idle deadline, and the cookie is re-sent with it.
    for _ in 0..20 {
        clock.advance(Duration::from_secs(29));
        let res = test::call_service(&app, req("GET", "/read", Some(&a))).await;
        let c = cookie(&res).expect("re-sent with the touch");
        assert_eq!(c.value(), a);
        let left = c.max_age().unwrap().whole_seconds();
        assert!(left <= 60, "{left}");
    }
    // 20 × 29 s = 9 min 40 s: the absolute deadline (10 min) bounds the cookie.
    clock.advance(Duration::from_secs(6));
    let res = test::call_service(&app, req("GET", "/visit", Some(&a))).await;
    assert_eq!(
        cookie(&res).unwrap().max_age(),
        Some(actix_web::cookie::time::Duration::seconds(14))
    );
    clock.advance(Duration::from_secs(15));
    let res = test::call_service(&app, req("GET", "/read", Some(&a))).await;
    assert_eq!(text(res).await, "0:", "expired at the absolute deadline");
}

/// "Remember me": a per-session idle timeout longer than cookieExpiration
/// gives the cookie that lifetime, also under cookieSessionOnly.
pub async fn remember_me_outlives_a_session_only_cookie(store: Arc<dyn DynSessionStore>) {
    for session_only in [false, true] {
        let config = Config::builder()
            .cookie_session_only(session_only)
            .build()
            .unwrap();
        let (_, clock, manager) = setup(Arc::clone(&store), config);
        let app = app!(manager);
        let res = test::call_service(&app, req("POST", "/login", None)).await;
        let plain = cookie(&res).unwrap().max_age();
        if session_only {
            assert_eq!(plain, None, "a plain login ends with the browser");
        } else {
            assert_eq!(plain, Some(actix_web::cookie::time::Duration::hours(2)));
        }
        let res = test::call_service(&app, req("POST", "/remember", None)).await;
        let a = sid(&res);
        let month = actix_web::cookie::time::Duration::days(30);
        assert_eq!(
            cookie(&res).unwrap().max_age(),
            Some(month),
            "session only: {session_only}"
        );
        // A week later it is still there, and the cookie keeps a month ahead.
        clock.advance(7 * 24 * 60 * MIN);
        let res = test::call_service(&app, req("GET", "/visit", Some(&a))).await;
        assert_eq!(cookie(&res).unwrap().max_age(), Some(month));
        let res = test::call_service(&app, req("GET", "/me", Some(&a))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

/// Under cookieSessionOnly, a configured idle timeout longer than
/// cookieExpiration is no reason for a persistent cookie: plain sessions
/// keep browser-session cookies at login and at every renewal, and only a
/// per-session override (remember-me) persists.
pub async fn a_long_configured_idle_timeout_keeps_session_only_cookies(
    store: Arc<dyn DynSessionStore>,
) {
    let config = Config::builder()
        .cookie_session_only(true)
        .idle_timeout(Duration::from_secs(8 * 3600))
        .cookie_expiration(Duration::from_secs(3600))
        .auto_renew_after(Duration::from_secs(600))
        .build()
        .unwrap();
    let (_, clock, manager) = setup(Arc::clone(&store), config);
    let app = app!(manager);
    let res = test::call_service(&app, req("POST", "/login", None)).await;
    let plain = cookie(&res).unwrap();
    assert_eq!(plain.max_age(), None, "a plain login ends with the browser");
    assert_eq!(plain.expires(), None);
    let a = sid(&res);
    // A renewal re-sends the cookie: still a browser-session one.
    clock.advance(11 * MIN);
    let res = test::call_service(&app, req("GET", "/visit", Some(&a))).await;
    let renewed = cookie(&res).expect("the renewal sends the new id");
    assert_ne!(renewed.value(), a, "the id was renewed");
    assert_eq!(renewed.max_age(), None, "a renewal keeps it session-only");
    // Remember-me (30 days, longer than the configured 8 h) persists.
    let res = test::call_service(&app, req("POST", "/remember", None)).await;
    assert_eq!(
        cookie(&res).unwrap().max_age(),
        Some(actix_web::cookie::time::Duration::days(30))
    );
}

/// Malformed, unknown and expired ids, and a session emptied by removing
/// its last field, get a removal cookie.
pub async fn stale_ids_get_a_removal_cookie(store: Arc<dyn DynSessionStore>) {
    let config = Config::builder()
        .idle_timeout(MIN)
        .disable_auto_renew(true)
        .build()
        .unwrap();
    let (_, clock, manager) = setup(store, config);
    let app = app!(manager);
    for bad in ["short", "unknown-but-well-formed-id-0000"] {
        let res = test::call_service(&app, req("GET", "/read", Some(bad))).await;
        assert_eq!(cookie(&res).expect("removal").value(), "", "{bad}");
        assert_eq!(header(&res, "cache-control"), Some("no-store".into()));
    }
    let a = sid(&test::call_service(&app, req("GET", "/visit", None)).await);
    clock.advance(2 * MIN);
    let res = test::call_service(&app, req("GET", "/read", Some(&a))).await;
    assert_eq!(cookie(&res).expect("expired: removal").value(), "");
    let b = sid(&test::call_service(&app, req("GET", "/visit", None)).await);
    let res = test::call_service(&app, req("POST", "/empty", Some(&b))).await;
    assert_eq!(cookie(&res).expect("emptied: removal").value(), "");
    assert_eq!(loaded(&manager, &b).await, None);
    // A stale id with new data gets the new id instead.
    let res = test::call_service(&app, req("GET", "/visit", Some(&a))).await;
    let c = sid(&res);
    assert!(!c.is_empty() && c != a);
}

fn header<B>(res: &ServiceResponse<B>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A 5xx answer or a failing handler persists nothing and sets no id;
/// `saveOnError` restores saving.
pub async fn failed_requests_persist_nothing(store: Arc<dyn DynSessionStore>) {
    let (_, _, manager) = setup(Arc::clone(&store), Config::default());
    let app = app!(manager);
    for path in ["/fail", "/fail-err"] {
        let res = test::call_service(&app, req("GET", path, None)).await;
        assert!(res.status().is_server_error());
        assert!(cookie(&res).is_none(), "{path}: no session created");
    }
    let a = sid(&test::call_service(&app, req("GET", "/visit", None)).await);
    test::call_service(&app, req("GET", "/fail", Some(&a))).await;
    assert_eq!(
        loaded(&manager, &a).await.unwrap().visits,
        1,
        "the 500's change was dropped"
    );

    let config = Config::builder().save_on_error(true).build().unwrap();
    let (_, _, manager) = setup(store, config);
    let app = app!(manager);
    let res = test::call_service(&app, req("GET", "/fail", Some(&a))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        loaded(&manager, &a).await.unwrap().visits,
        99,
        "saveOnError keeps it"
    );
}

/// `update_visits(|v| if *v > 0 { *v += 1 })` on a new visitor: nothing stored, no cookie.
pub async fn a_no_op_update_creates_nothing(store: Arc<dyn DynSessionStore>) {
    let (rec, _, manager) = setup(store, Config::default());
    let app = app!(manager);
    let res = test::call_service(&app, req("GET", "/noop", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(cookie(&res).is_none());
    assert!(
        rec.take_calls()
            .iter()
            .all(|c| !matches!(c, Call::Write(_))),
        "nothing written"
    );
}

/// A session stored before `maxSessionBytes` was lowered stays readable
/// (and does not slide forever); only a write that exceeds the limit is refused.
pub async fn an_oversized_stored_session_stays_readable(store: Arc<dyn DynSessionStore>) {
    let (_, _, big) = setup(Arc::clone(&store), Config::default());
    let app = app!(big);
    let a = sid(&test::call_service(&app, req("POST", "/blob/5000", None)).await);
    let small = Config::builder()
        .max_session_bytes(1000_usize)
        .build()
        .unwrap();
    let (_, clock, manager) = setup(store, small);
    let app = app!(manager);
    let res = test::call_service(&app, req("GET", "/read", Some(&a))).await;
    assert_eq!(res.status(), StatusCode::OK, "read-only: fine");
    clock.advance(5 * MIN);
    let res = test::call_service(&app, req("GET", "/read", Some(&a))).await;
    assert_eq!(res.status(), StatusCode::OK, "with a touch: fine");
    let res = test::call_service(&app, req("POST", "/add/more", Some(&a))).await;
    assert_eq!(
        res.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "growing it: refused"
    );
    assert!(
        loaded(&manager, &a).await.unwrap().cart.is_empty(),
        "nothing written"
    );
}

mod memory {
    all_http_cases!(sessionkit::MemoryStore::new());
}

mod redis {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisServer};

    all_http_cases!(RedisStore::builder(RedisServer::shared().url())
        .prefix(unique_prefix("http"))
        .build()
        .expect("store"));
}

mod cluster {
    use sessionkit::RedisStore;
    use sessionkit_tests::redis_server::{unique_prefix, RedisCluster};

    all_http_cases!(RedisStore::cluster_builder(RedisCluster::shared().urls())
        .prefix(unique_prefix("http"))
        .build()
        .expect("store"));
}

/// Concurrent changes that keep conflicting past the retry bound: 409, and
/// nothing of the request is written.
#[actix_web::test]
async fn exhausted_retries_answer_409_and_write_nothing() {
    use sessionkit::store::{SessionStore, StoreError};
    use sessionkit::store::{Write, Written};
    use sessionkit::MemoryStore;

    /// Every write that expects `visits` first changes it behind its back.
    #[derive(Clone)]
    struct Contended(MemoryStore, Arc<std::sync::atomic::AtomicU8>);
    impl SessionStore for Contended {
        async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
            self.0.load(id, now).await
        }
        async fn write(&self, write: &Write) -> Result<Written, StoreError> {
            if write.expect.iter().any(|(name, _)| *name == "visits") {
                let n = 20 + self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 100;
                let mut meddle = write.clone();
                meddle.expect.clear();
                meddle.set = vec![("visits", bytes::Bytes::from(vec![n]))];
                self.0.write(&meddle).await?;
            }
            self.0.write(write).await
        }
        async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
            self.0.delete(id).await
        }
    }
    let memory = MemoryStore::new();
    let meddled = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let manager = SessionManager::<Shop>::new(Contended(memory.clone(), Arc::clone(&meddled)));
    let app = app!(manager);
    let a = sid(&test::call_service(&app, req("POST", "/set/5", None)).await);
    let res = test::call_service(&app, req("POST", "/add/x", Some(&a))).await;
    assert_eq!(res.status(), StatusCode::OK, "a field nobody else changes");
    let res = test::call_service(&app, req("GET", "/visit", Some(&a))).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let plain = SessionManager::<Shop>::new(memory);
    let now = plain.load_by_id(&a).await.unwrap().unwrap().snapshot();
    let last = 20 + (meddled.load(std::sync::atomic::Ordering::SeqCst) - 1) % 100;
    assert_eq!(
        now.visits,
        u32::from(last),
        "only the meddling writer's value"
    );
    assert_eq!(now.cart, ["x"]);
}

/// Several actix workers (threads) on one memory store and one session: no
/// increment is lost.
#[test]
fn memory_store_across_workers_loses_nothing() {
    use std::io::{Read, Write as _};
    let store = sessionkit::MemoryStore::new();
    let manager = SessionManager::<Shop>::new(store);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let srv = actix_web::HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(Seen::default()))
                    .wrap(SessionMiddleware::new(manager.clone()))
                    .route("/visit", web::get().to(visit))
                    .route("/read", web::get().to(read))
            })
            .workers(4)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = srv.addrs()[0];
            let srv = srv.run();
            tx.send((addr, srv.handle())).unwrap();
            srv.await.unwrap();
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    let get = move |path: &str, sid: Option<&str>| -> (String, String) {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let cookie = sid.map_or(String::new(), |s| format!("Cookie: session_id={s}\r\n"));
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{cookie}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        let set = out
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: session_id="))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (set, body)
    };
    let (a, _) = get("/visit", None);
    assert!(!a.is_empty());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    get("/visit", Some(&a));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (_, body) = get("/read", Some(&a));
    assert_eq!(body, "201:", "1 + 8 × 25 visits");
    actix_web::rt::System::new().block_on(handle.stop(true));
    server.join().unwrap();
}

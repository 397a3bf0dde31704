//! SessionMiddleware through actix: options, extractors, response rules,
//! security methods, laziness, errors and timeouts.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use actix_web::cookie::SameSite as CookieSameSite;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpRequest, HttpResponse};
use common::*;
use sessionkit::{
    Config, DynSessionStore, Extractor, ManualClock, MemoryStore, SameSite, SessionManager,
    SourceKind,
};
use sessionkit_actix::{Session, SessionExt, SessionMiddleware, SessionRejection};

// ---------------------------------------------------------------- handlers

async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("plain")
}

async fn visit(session: Session<User>) -> HttpResponse {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(n.to_string())
}

async fn read(session: Session<User>) -> HttpResponse {
    HttpResponse::Ok().body(session.visits().to_string())
}

async fn id(session: Session<User>) -> HttpResponse {
    HttpResponse::Ok().body(session.id().to_string())
}

async fn login(session: Session<User>) -> HttpResponse {
    if session.regenerate().is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    session.set_user_id(Some(1));
    session.set_authenticated(true);
    HttpResponse::Ok().body(session.id().to_string())
}

async fn logout(session: Session<User>) -> HttpResponse {
    if session.reset().is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok().body("logged out")
}

async fn destroy(session: Session<User>) -> HttpResponse {
    session.destroy();
    HttpResponse::Ok().body("destroyed")
}

async fn cached(session: Session<User>) -> HttpResponse {
    session.update_visits(|v| *v += 1);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, max-age=60"))
        .finish()
}

async fn form_echo(
    session: Session<User>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    let item = form.get("item").cloned().unwrap_or_default();
    HttpResponse::Ok().body(format!("{n} {item}"))
}

async fn echo_headers(req: HttpRequest) -> HttpResponse {
    let mut names: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{}={}", n.as_str(), v.to_str().unwrap_or("?")))
        .collect();
    names.sort();
    HttpResponse::Ok().body(format!("{} ?{}", names.join("\n"), req.query_string()))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/plain", web::get().to(plain))
        .route("/visit", web::get().to(visit))
        .route("/read", web::get().to(read))
        .route("/id", web::get().to(id))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/destroy", web::post().to(destroy))
        .route("/cached", web::get().to(cached))
        .route("/form", web::post().to(form_echo))
        .route("/echo", web::get().to(echo_headers));
}

macro_rules! app {
    ($mw:expr) => {
        test::init_service(App::new().wrap($mw).configure(routes)).await
    };
}

fn manager(config: Config) -> SessionManager<User> {
    SessionManager::builder(MemoryStore::new())
        .config(config)
        .build()
        .unwrap()
}

fn mw(config: Config) -> SessionMiddleware<User> {
    SessionMiddleware::new(manager(config))
}

fn lookup(key_lookup: &str) -> Config {
    Config::builder().key_lookup(key_lookup).build().unwrap()
}

async fn body<B: actix_web::body::MessageBody>(res: actix_web::dev::ServiceResponse<B>) -> String {
    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn with_cookie(req: TestRequest, name: &str, value: &str) -> TestRequest {
    req.insert_header(("Cookie", format!("{name}={value}")))
}

// ---------------------------------------------------------------- options

#[actix_web::test]
async fn cookie_carries_every_configured_attribute() {
    let config = Config::builder()
        .cookie_http_only(true)
        .cookie_secure(true)
        .cookie_same_site(SameSite::Strict)
        .cookie_path("/app")
        .cookie_domain("example.com")
        .cookie_expiration(Duration::from_secs(3600))
        .build()
        .unwrap();
    let app = app!(mw(config));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = set_cookie(&res, "session_id").expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(CookieSameSite::Strict));
    assert_eq!(cookie.path(), Some("/app"));
    assert_eq!(cookie.domain(), Some("example.com"));
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::seconds(3600))
    );
    assert!(cookie.value().len() >= 16);
}

#[actix_web::test]
async fn same_site_none_and_lax_are_sent_as_configured() {
    let none = Config::builder()
        .cookie_same_site(SameSite::None)
        .cookie_secure(true)
        .build()
        .unwrap();
    let app = app!(mw(none));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let cookie = set_cookie(&res, "session_id").unwrap();
    assert_eq!(cookie.same_site(), Some(CookieSameSite::None));
    assert_eq!(cookie.secure(), Some(true));
}

#[actix_web::test]
async fn defaults_are_lax_not_secure_not_http_only_two_hours() {
    let app = app!(mw(Config::default()));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let cookie = set_cookie(&res, "session_id").unwrap();
    assert_eq!(cookie.http_only(), None);
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.same_site(), Some(CookieSameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::seconds(7200))
    );
}

#[actix_web::test]
async fn session_only_cookie_has_no_max_age_or_expires() {
    let config = Config::builder().cookie_session_only(true).build().unwrap();
    let app = app!(mw(config));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let cookie = set_cookie(&res, "session_id").unwrap();
    assert_eq!(cookie.max_age(), None);
    assert_eq!(cookie.expires(), None);
}

#[actix_web::test]
async fn session_persists_across_requests_by_cookie() {
    let app = app!(mw(Config::default()));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let sid = set_cookie(&res, "session_id").unwrap().value().to_owned();
    assert_eq!(body(res).await, "1");
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    // The session changed: the same id is sent again, so the browser's
    // cookie lives as long as the session it names.
    let again = set_cookie(&res, "session_id").expect("re-sent on a change");
    assert_eq!(again.value(), sid);
    assert_eq!(body(res).await, "2");
}

// ---------------------------------------------------------------- laziness

#[actix_web::test]
async fn untouched_session_costs_no_store_call_and_no_cookie() {
    let store = CountingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(
        &app,
        with_cookie(get("/plain"), "session_id", FORGED).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert!(header(&res, "cache-control").is_none());
    assert_eq!(store.calls(), 0);
}

#[actix_web::test]
async fn reading_an_empty_session_stores_nothing_and_sets_no_cookie() {
    let store = CountingStore::new();
    let app = app!(SessionMiddleware::new(SessionManager::<User>::new(
        store.clone()
    )));
    // No id at all: a fresh session, nothing to load, nothing to save.
    let res = test::call_service(&app, get("/read").to_request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(store.calls(), 0);
}

// ---------------------------------------------------------------- cache-control

#[actix_web::test]
async fn responses_that_set_an_id_are_no_store() {
    let app = app!(mw(Config::default()));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
}

#[actix_web::test]
async fn a_response_carrying_an_id_is_never_cacheable() {
    // The handler says `private, max-age=60`; a response that sets a session
    // id must still never be stored by any cache.
    let app = app!(mw(Config::default()));
    let res = test::call_service(&app, get("/cached").to_request()).await;
    assert!(set_cookie(&res, "session_id").is_some());
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
}

// ---------------------------------------------------------------- extractors

#[actix_web::test]
async fn header_extractor_reads_and_writes_the_header() {
    let app = app!(mw(lookup("header:X-Session-Token")));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert!(set_cookies(&res).is_empty());
    let sid = header(&res, "x-session-token").expect("id header");
    let res = test::call_service(
        &app,
        get("/visit")
            .insert_header(("X-Session-Token", sid.as_str()))
            .to_request(),
    )
    .await;
    assert_eq!(
        header(&res, "x-session-token").as_deref(),
        Some(sid.as_str()),
        "the same id, re-sent on a change"
    );
    assert_eq!(body(res).await, "2");
}

/// A session stored under a known id, for read-only sources.
async fn stored_session(manager: &SessionManager<User>, visits: u32) -> String {
    let session = manager.create().unwrap();
    session.set_visits(visits);
    session.save().await.unwrap();
    session.id().to_string()
}

#[actix_web::test]
async fn query_extractor_is_read_only() {
    let manager = manager(lookup("query:session_id"));
    let sid = stored_session(&manager, 10).await;
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(&app, get(&format!("/visit?session_id={sid}")).to_request()).await;
    assert!(set_cookies(&res).is_empty());
    assert!(header(&res, "session_id").is_none());
    assert_eq!(body(res).await, "11");
    // A new session through a read-only source is made but never written back.
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert!(set_cookies(&res).is_empty());
    assert!(header(&res, "cache-control").is_none());
}

#[actix_web::test]
async fn form_extractor_leaves_the_body_to_the_handler() {
    let manager = manager(lookup("form:session_id"));
    let sid = stored_session(&manager, 4).await;
    let app = app!(SessionMiddleware::new(manager));
    let req = TestRequest::post()
        .uri("/form")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(format!("item=apple&session_id={sid}"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body(res).await, "5 apple");
}

#[actix_web::test]
async fn form_larger_than_the_limit_reaches_the_handler_whole() {
    let manager = manager(lookup("form:session_id"));
    let sid = stored_session(&manager, 4).await;
    let app = app!(SessionMiddleware::builder(manager).form_limit(16).build());
    let req = TestRequest::post()
        .uri("/form")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(format!("item=apple&session_id={sid}"))
        .to_request();
    let res = test::call_service(&app, req).await;
    // Not buffered: the id is not found (fresh session), the form still is.
    assert_eq!(body(res).await, "1 apple");
}

#[actix_web::test]
async fn path_param_extractor_works_under_a_scope() {
    let manager = manager(lookup("param:sid"));
    let sid = stored_session(&manager, 7).await;
    let app = test::init_service(
        App::new().service(
            web::scope("/s/{sid}")
                .wrap(SessionMiddleware::new(manager))
                .route("/visit", web::get().to(visit)),
        ),
    )
    .await;
    let res = test::call_service(&app, get(&format!("/s/{sid}/visit")).to_request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body(res).await, "8");
}

#[actix_web::test]
async fn chain_of_cookie_and_header_sets_both() {
    let app = app!(mw(lookup("cookie:session_id,header:X-Session-ID")));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let cookie = set_cookie(&res, "session_id").unwrap();
    let hdr = header(&res, "x-session-id").unwrap();
    assert_eq!(cookie.value(), hdr);
    // The header alone finds the session (cookie first, header next).
    let res = test::call_service(
        &app,
        get("/visit")
            .insert_header(("X-Session-ID", hdr.as_str()))
            .to_request(),
    )
    .await;
    assert_eq!(body(res).await, "2");
}

#[actix_web::test]
async fn id_from_a_read_only_source_is_never_promoted_into_a_cookie() {
    let manager = manager(lookup("cookie:session_id,query:session_id"));
    let sid = stored_session(&manager, 1).await;
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(&app, get(&format!("/visit?session_id={sid}")).to_request()).await;
    assert!(set_cookie(&res, "session_id").is_none());
    assert_eq!(body(res).await, "2");
    // Without any id, the new server-made id goes out as the cookie.
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert!(set_cookie(&res, "session_id").is_some());
}

#[actix_web::test]
async fn read_only_chain_never_writes() {
    let app = app!(mw(lookup("query:session_id,form:session_id")));
    for uri in ["/visit", "/visit?session_id=nonexistent-but-well-formed"] {
        let res = test::call_service(&app, get(uri).to_request()).await;
        assert!(set_cookies(&res).is_empty());
        assert!(header(&res, "session_id").is_none());
    }
    let res = test::call_service(&app, TestRequest::post().uri("/logout").to_request()).await;
    assert!(set_cookies(&res).is_empty());
}

#[actix_web::test]
async fn custom_header_extractor_writes_its_header() {
    let bearer = Extractor::custom("Authorization", SourceKind::Header, |req| {
        req.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::to_owned)
    });
    let manager = SessionManager::<User>::builder(MemoryStore::new())
        .extractor(bearer)
        .build()
        .unwrap();
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let sid = header(&res, "authorization").expect("id sent back in Authorization");
    let res = test::call_service(
        &app,
        get("/visit")
            .insert_header(("Authorization", format!("Bearer {sid}")))
            .to_request(),
    )
    .await;
    assert_eq!(body(res).await, "2");
}

#[actix_web::test]
async fn custom_read_only_extractor_writes_nothing() {
    let custom = Extractor::custom("X-Custom-Session", SourceKind::Other, |req| {
        req.header("x-custom-session").map(str::to_owned)
    });
    let manager = SessionManager::<User>::builder(MemoryStore::new())
        .extractor(custom)
        .build()
        .unwrap();
    let sid = stored_session(&manager, 2).await;
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(
        &app,
        get("/visit")
            .insert_header(("X-Custom-Session", sid.as_str()))
            .to_request(),
    )
    .await;
    assert!(set_cookies(&res).is_empty());
    assert!(header(&res, "x-custom-session").is_none());
    assert_eq!(body(res).await, "3");
}

// ---------------------------------------------------------------- security

#[actix_web::test]
async fn forged_id_is_never_adopted() {
    let store = CountingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let app = app!(SessionMiddleware::new(manager.clone()));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", FORGED).to_request(),
    )
    .await;
    let cookie = set_cookie(&res, "session_id").unwrap();
    assert_ne!(cookie.value(), FORGED);
    assert_eq!(body(res).await, "1");
    assert!(manager.load_by_id(FORGED).await.unwrap().is_none());
}

#[actix_web::test]
async fn malformed_ids_give_a_fresh_session_not_an_error() {
    let store = CountingStore::new();
    let app = app!(SessionMiddleware::new(SessionManager::<User>::new(
        store.clone()
    )));
    let long = "a".repeat(1024);
    for bad in [
        "{",
        "/",
        "%7B%22a%22%3A1%7D",
        "a%0D%0AX-Evil: 1",
        "../../../etc/passwd",
        long.as_str(),
    ] {
        let res = test::call_service(
            &app,
            with_cookie(get("/visit"), "session_id", bad).to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "id {bad:?}");
        let cookie = set_cookie(&res, "session_id").unwrap();
        assert_ne!(cookie.value(), bad);
        assert_eq!(body(res).await, "1");
    }
    // Malformed ids never reach the store: only the saves of new sessions do.
    assert_eq!(store.calls(), 6);
}

#[actix_web::test]
async fn malformed_header_and_query_ids_give_a_fresh_session() {
    let app = app!(mw(lookup("header:X-Session-ID,query:sid")));
    let long = "b".repeat(1024);
    for uri in ["/visit?sid=%7B", "/visit?sid=%2F", "/visit?sid=a%0D%0Ab"] {
        let res = test::call_service(&app, get(uri).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "1");
    }
    let res = test::call_service(
        &app,
        get("/visit")
            .insert_header(("X-Session-ID", long.as_str()))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(header(&res, "x-session-id").unwrap(), long);
}

#[actix_web::test]
async fn regenerate_rotates_the_id_and_the_old_one_is_unusable() {
    let manager = manager(Config::default());
    let app = app!(SessionMiddleware::new(manager.clone()));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let old = set_cookie(&res, "session_id").unwrap().value().to_owned();

    let res = test::call_service(
        &app,
        with_cookie(TestRequest::post().uri("/login"), "session_id", &old).to_request(),
    )
    .await;
    let new = set_cookie(&res, "session_id").unwrap().value().to_owned();
    assert_ne!(new, old);
    assert_eq!(body(res).await, new);

    // Data kept under the new id…
    let res = test::call_service(
        &app,
        with_cookie(get("/read"), "session_id", &new).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "1");
    // …and the old id is gone.
    assert!(manager.load_by_id(&old).await.unwrap().is_none());
    let res = test::call_service(
        &app,
        with_cookie(get("/read"), "session_id", &old).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "0");
}

#[actix_web::test]
async fn reset_clears_data_and_removes_the_cookie_keeping_its_attributes() {
    let config = Config::builder()
        .cookie_secure(true)
        .cookie_path("/app")
        .cookie_domain("example.com")
        .build()
        .unwrap();
    let manager = manager(config);
    let sid = stored_session(&manager, 3).await;
    let app = app!(SessionMiddleware::new(manager.clone()));
    let res = test::call_service(
        &app,
        with_cookie(TestRequest::post().uri("/logout"), "session_id", &sid).to_request(),
    )
    .await;
    let removal = set_cookie(&res, "session_id").expect("removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.path(), Some("/app"));
    assert_eq!(removal.domain(), Some("example.com"));
    assert_eq!(removal.secure(), Some(true));
    assert!(
        removal.max_age() == Some(actix_web::cookie::time::Duration::ZERO)
            || removal.expires().is_some()
    );
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
    assert!(manager.load_by_id(&sid).await.unwrap().is_none());
}

#[actix_web::test]
async fn destroy_deletes_the_session_and_clears_the_header() {
    let manager = manager(lookup("cookie:session_id,header:X-Session-ID"));
    let sid = stored_session(&manager, 3).await;
    let app = app!(SessionMiddleware::new(manager.clone()));
    let res = test::call_service(
        &app,
        TestRequest::post()
            .uri("/destroy")
            .insert_header(("X-Session-ID", sid.as_str()))
            .to_request(),
    )
    .await;
    assert_eq!(set_cookie(&res, "session_id").unwrap().value(), "");
    assert_eq!(header(&res, "x-session-id").as_deref(), Some(""));
    assert!(manager.load_by_id(&sid).await.unwrap().is_none());
}

// ---------------------------------------------------------------- timeouts

fn clocked(config: Config, clock: &ManualClock) -> SessionManager<User> {
    SessionManager::builder(MemoryStore::new())
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap()
}

const T0: u64 = 1_700_000_000_000;

#[actix_web::test]
async fn auto_renew_rotates_the_id_after_auto_renew_after() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .auto_renew_after(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let manager = clocked(config, &clock);
    let app = app!(SessionMiddleware::new(manager.clone()));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let first = set_cookie(&res, "session_id").unwrap().value().to_owned();

    clock.advance(Duration::from_secs(30));
    let res = test::call_service(
        &app,
        with_cookie(get("/read"), "session_id", &first).to_request(),
    )
    .await;
    assert!(
        set_cookie(&res, "session_id").is_none(),
        "not due yet, and nothing written"
    );

    clock.advance(Duration::from_secs(31));
    let res = test::call_service(
        &app,
        with_cookie(get("/read"), "session_id", &first).to_request(),
    )
    .await;
    let second = set_cookie(&res, "session_id")
        .expect("renewed")
        .value()
        .to_owned();
    assert_ne!(second, first);
    assert_eq!(body(res).await, "1");
    // The old id reaches the session for the grace period, then nothing.
    let via_old = manager.load_by_id(&first).await.unwrap().expect("grace");
    assert_eq!(via_old.id().as_str(), second);
    clock.advance(Duration::from_secs(5));
    assert!(manager.load_by_id(&first).await.unwrap().is_none());
    assert!(manager.load_by_id(&second).await.unwrap().is_some());
}

#[actix_web::test]
async fn disable_auto_renew_keeps_the_id() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .disable_auto_renew(true)
        .auto_renew_after(Duration::from_secs(60))
        .cookie_session_only(true)
        .build()
        .unwrap();
    let app = app!(SessionMiddleware::new(clocked(config, &clock)));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let first = set_cookie(&res, "session_id").unwrap().value().to_owned();
    clock.advance(Duration::from_secs(600));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &first).to_request(),
    )
    .await;
    let again = set_cookie(&res, "session_id").expect("re-sent on a change");
    assert_eq!(again.value(), first, "never renewed");
    assert_eq!(body(res).await, "2");
}

#[actix_web::test]
async fn idle_timeout_expires_the_session_and_activity_extends_it() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(60))
        .disable_auto_renew(true)
        .build()
        .unwrap();
    let app = app!(SessionMiddleware::new(clocked(config, &clock)));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let sid = set_cookie(&res, "session_id").unwrap().value().to_owned();

    // Activity every 45 s keeps it alive past 60 s in total.
    for expected in ["2", "3"] {
        clock.advance(Duration::from_secs(45));
        let res = test::call_service(
            &app,
            with_cookie(get("/visit"), "session_id", &sid).to_request(),
        )
        .await;
        assert_eq!(body(res).await, expected);
    }
    clock.advance(Duration::from_secs(61));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    let cookie = set_cookie(&res, "session_id").expect("a new session");
    assert_ne!(cookie.value(), sid);
    assert_eq!(body(res).await, "1");
}

#[actix_web::test]
async fn absolute_timeout_expires_an_active_session() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(100))
        .disable_auto_renew(true)
        .build()
        .unwrap();
    let app = app!(SessionMiddleware::new(clocked(config, &clock)));
    let res = test::call_service(&app, get("/visit").to_request()).await;
    let sid = set_cookie(&res, "session_id").unwrap().value().to_owned();
    clock.advance(Duration::from_secs(50));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "2");
    clock.advance(Duration::from_secs(51));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "1", "expired after 101 s despite activity");
}

// ---------------------------------------------------------------- errors

#[actix_web::test]
async fn store_failure_on_load_is_an_opaque_503() {
    let store = FailingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let sid = stored_session(&manager, 1).await;
    let app = app!(SessionMiddleware::new(manager));
    store.set_failing(true);
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&res).is_empty());
    let text = body(res).await;
    assert_eq!(text, "session storage unavailable");
    assert!(!text.contains("secret-backend"));
    // Untouched routes still work while the store is down.
    let res = test::call_service(&app, get("/plain").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn store_failure_on_save_replaces_the_handler_response() {
    let store = FailingStore::new();
    let app = app!(SessionMiddleware::new(SessionManager::<User>::new(
        store.clone()
    )));
    store.set_failing(true);
    // No id: nothing to load; the save after the handler fails.
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body(res).await, "session storage unavailable");
    store.set_failing(false);
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn custom_error_handler_answers() {
    let store = FailingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let app = app!(SessionMiddleware::builder(manager)
        .error_handler(|error, req| {
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "7"))
                .body(format!(
                    "down for {} (store: {})",
                    req.path(),
                    matches!(error, sessionkit::SessionError::Store(_))
                ))
        })
        .build());
    store.set_failing(true);
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("7"));
    assert_eq!(body(res).await, "down for /visit (store: true)");
}

#[actix_web::test]
async fn too_large_session_is_a_500() {
    let config = Config::builder().max_session_bytes(4usize).build().unwrap();
    let app = app!(mw(config));
    let res = test::call_service(&app, TestRequest::post().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(body(res).await, "session error");
}

#[actix_web::test]
async fn session_without_middleware_is_a_typed_rejection() {
    let app = test::init_service(App::new().configure(routes)).await;
    let res = test::call_service(&app, get("/visit").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = body(res).await;
    assert!(text.contains("no SessionMiddleware<"), "{text}");
    assert!(text.contains("User"), "{text}");

    let req = get("/").to_http_request();
    let rejection: SessionRejection = req.session::<User>().await.unwrap_err();
    assert!(rejection.is_missing_middleware());
    assert!(rejection.session_error().is_none());
}

#[actix_web::test]
async fn session_ext_shares_the_handlers_session() {
    async fn twice(req: HttpRequest, session: Session<User>) -> HttpResponse {
        session.set_visits(41);
        let again = req.session::<User>().await.unwrap();
        again.update_visits(|v| *v += 1);
        HttpResponse::Ok().body(session.visits().to_string())
    }
    let app = test::init_service(
        App::new()
            .wrap(mw(Config::default()))
            .route("/", web::get().to(twice)),
    )
    .await;
    let res = test::call_service(&app, get("/").to_request()).await;
    assert_eq!(body(res).await, "42");
}

#[actix_web::test]
async fn nested_middleware_for_the_same_type_uses_the_outer_one() {
    let outer = manager(Config::default());
    let inner = manager(lookup("header:X-Inner"));
    let app = test::init_service(
        App::new().wrap(SessionMiddleware::new(outer)).service(
            web::scope("/in")
                .wrap(SessionMiddleware::new(inner))
                .route("/visit", web::get().to(visit)),
        ),
    )
    .await;
    let res = test::call_service(&app, get("/in/visit").to_request()).await;
    assert!(set_cookie(&res, "session_id").is_some());
    assert!(header(&res, "x-inner").is_none());
}

// ---------------------------------------------------------------- disableSessionForward

#[actix_web::test]
async fn disable_session_forward_strips_the_session_cookie_only() {
    let config = Config::builder()
        .key_lookup("cookie:session_id,header:X-Session-ID,query:session_id")
        .disable_session_forward(true)
        .build()
        .unwrap();
    let manager = manager(config);
    let sid = stored_session(&manager, 1).await;
    let app = app!(SessionMiddleware::new(manager));

    let res = test::call_service(
        &app,
        get("/echo")
            .insert_header(("Cookie", format!("theme=dark; session_id={sid}; lang=en")))
            .insert_header(("X-Session-ID", sid.as_str()))
            .insert_header(("X_Session_Id", sid.as_str()))
            .to_request(),
    )
    .await;
    let seen = body(res).await;
    assert!(!seen.contains(&sid), "{seen}");
    assert!(seen.contains("cookie=theme=dark; lang=en"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("x-session-id"),
        "{seen}"
    );

    let res = test::call_service(
        &app,
        get(&format!("/echo?a=1&session_id={sid}&b=2")).to_request(),
    )
    .await;
    let seen = body(res).await;
    assert!(!seen.contains(&sid), "{seen}");
    assert!(seen.ends_with("?a=1&b=2"), "{seen}");
}

#[actix_web::test]
async fn disable_session_forward_still_loads_the_session() {
    let config = Config::builder()
        .disable_session_forward(true)
        .build()
        .unwrap();
    let manager = manager(config);
    let sid = stored_session(&manager, 5).await;
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "6");
}

#[actix_web::test]
async fn without_disable_session_forward_the_cookie_reaches_the_handler() {
    let manager = manager(Config::default());
    let sid = stored_session(&manager, 5).await;
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(
        &app,
        with_cookie(get("/echo"), "session_id", &sid).to_request(),
    )
    .await;
    assert!(body(res).await.contains(&sid));
}

#[actix_web::test]
async fn store_calls_are_one_load_and_one_save_at_most() {
    let store = CountingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let sid = stored_session(&manager, 1).await;
    let before = store.calls();
    let app = app!(SessionMiddleware::new(manager));
    let res = test::call_service(
        &app,
        with_cookie(get("/read"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "1");
    assert_eq!(store.calls() - before, 1, "a read is a single load");
    let res = test::call_service(
        &app,
        with_cookie(get("/visit"), "session_id", &sid).to_request(),
    )
    .await;
    assert_eq!(body(res).await, "2");
    assert_eq!(store.calls() - before, 3, "a write is a load and a save");
    let _: &dyn DynSessionStore = &store;
}

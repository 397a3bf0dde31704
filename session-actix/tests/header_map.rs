//! MapSessionToHeader through actix: mapping, anti-spoofing, CR/LF values,
//! runtime maps checked at start-up, middleware order.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpRequest, HttpResponse};
use common::*;
use sessionkit::{
    normalize_header_name, Config, HeaderMapConfig, HeaderMapError, MemoryStore, SessionManager,
};
use sessionkit_actix::{MapSessionToHeader, Session, SessionMiddleware};

/// What a downstream service would see: every header, `name: value` per line.
async fn downstream(req: HttpRequest) -> HttpResponse {
    let mut lines: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{}: {}", n.as_str(), v.to_str().unwrap_or("<bytes>")))
        .collect();
    lines.sort();
    HttpResponse::Ok().body(lines.join("\n"))
}

async fn login(session: Session<User>) -> HttpResponse {
    session.set_user_id(Some(42));
    session.set_name(Some("Ada".to_owned()));
    HttpResponse::Ok().finish()
}

async fn set_name(session: Session<User>, name: web::Path<String>) -> HttpResponse {
    session.set_user_id(Some(7));
    session.set_name(Some(name.into_inner()));
    HttpResponse::Ok().finish()
}

fn manager(config: Config) -> SessionManager<User> {
    SessionManager::builder(MemoryStore::new())
        .config(config)
        .build()
        .unwrap()
}

macro_rules! gateway {
    ($manager:expr, $map:expr) => {
        test::init_service(
            App::new()
                .wrap(SessionMiddleware::new($manager))
                .route("/login", web::post().to(login))
                .route("/name/{name}", web::post().to(set_name))
                .service(
                    web::scope("/dashboard")
                        .wrap($map)
                        .default_service(web::to(downstream)),
                ),
        )
        .await
    };
}

async fn text<B: actix_web::body::MessageBody>(res: actix_web::dev::ServiceResponse<B>) -> String {
    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
}

async fn login_cookie<S, B>(app: &S, uri: &str) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let res = test::call_service(app, TestRequest::post().uri(uri).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    set_cookie(&res, "session_id").unwrap().value().to_owned()
}

#[actix_web::test]
async fn derive_mapping_sets_headers_from_the_session() {
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::from_derive()
    );
    let sid = login_cookie(&app, "/login").await;
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("Cookie", format!("session_id={sid}")))
            .to_request(),
    )
    .await;
    let seen = text(res).await;
    assert!(seen.contains("x-user-id: 42"), "{seen}");
    assert!(seen.contains("x-user-name: Ada"), "{seen}");
}

#[actix_web::test]
async fn client_supplied_mapped_headers_are_removed_in_every_spelling() {
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::from_derive()
    );
    let sid = login_cookie(&app, "/login").await;
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard/x")
            .insert_header(("Cookie", format!("session_id={sid}")))
            .insert_header(("X-User-Id", "999"))
            .append_header(("x-user-id", "998"))
            .insert_header(("x_user_id", "997"))
            .insert_header(("X_USER_ID", "996"))
            .insert_header(("X-Other", "kept"))
            .to_request(),
    )
    .await;
    let seen = text(res).await;
    let user_lines: Vec<&str> = seen
        .lines()
        .filter(|l| l.replace('_', "-").starts_with("x-user-id"))
        .collect();
    assert_eq!(user_lines, ["x-user-id: 42"], "{seen}");
    assert!(seen.contains("x-other: kept"));
}

/// Every spelling a downstream service might fold onto `X-User-Id`.
const USER_ID_SPELLINGS: [&str; 12] = [
    "X-User-Id",
    "x-user-id",
    "X.User.Id",
    "x_user_id",
    "X-USER.ID",
    "XUserId",
    "x~user~id",
    "X_User-Id",
    "x.user_id",
    "x!user#id",
    "-X-User-Id-",
    "x`user|id",
];

#[actix_web::test]
async fn client_supplied_mapped_headers_are_removed_whatever_their_punctuation() {
    let yaml = "headers:\n  X-Account: user_id\n";
    let config: HeaderMapConfig = serde_norway::from_str(yaml).unwrap();
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::with_config(&config).unwrap()
    );
    let sid = login_cookie(&app, "/login").await;
    let mut req = TestRequest::get()
        .uri("/dashboard/x")
        .insert_header(("Cookie", format!("session_id={sid}")))
        .insert_header(("X-Other", "kept"));
    for (i, spelling) in USER_ID_SPELLINGS.iter().enumerate() {
        req = req.append_header((*spelling, format!("spoofed-{i}")));
    }
    for spelling in ["x.account", "X_ACCOUNT", "XAccount", "x~account"] {
        req = req.append_header((spelling, "spoofed"));
    }
    let seen = text(test::call_service(&app, req.to_request()).await).await;
    let folded = |wanted: &str| -> Vec<&str> {
        seen.lines()
            .filter(|line| {
                let name = line.split(':').next().unwrap_or_default();
                normalize_header_name(name) == wanted
            })
            .collect()
    };
    assert_eq!(folded("xuserid"), ["x-user-id: 42"], "{seen}");
    assert_eq!(folded("xaccount"), ["x-account: 42"], "{seen}");
    // (Not a substring of the session id, which is in the cookie line.)
    assert!(!seen.contains("spoofed"), "{seen}");
    assert!(seen.contains("x-other: kept"), "{seen}");
}

#[actix_web::test]
async fn punctuation_variants_are_removed_without_a_session_too() {
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::from_derive()
    );
    let mut req = TestRequest::get().uri("/dashboard");
    for spelling in USER_ID_SPELLINGS {
        req = req.append_header((spelling, "spoofed"));
    }
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = text(res).await;
    assert!(!seen.contains("spoofed"), "{seen}");
    assert!(
        !seen
            .lines()
            .any(|l| normalize_header_name(l.split(':').next().unwrap_or_default()) == "xuserid"),
        "{seen}"
    );
}

#[actix_web::test]
async fn absent_session_value_means_absent_header_even_if_spoofed() {
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::from_derive()
    );
    // No session at all.
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("X-User-Id", "999"))
            .insert_header(("x_user_id", "999"))
            .insert_header(("X-User-Name", "root"))
            .to_request(),
    )
    .await;
    // An untouched fresh session: nothing stored, no cookie.
    assert!(set_cookies(&res).is_empty());
    let seen = text(res).await;
    assert!(!seen.contains("999"), "{seen}");
    assert!(!seen.contains("root"), "{seen}");
    assert!(!seen.contains("x-user"), "{seen}");
}

#[actix_web::test]
async fn values_with_cr_lf_never_become_headers() {
    let app = gateway!(
        manager(Config::default()),
        MapSessionToHeader::<User>::from_derive()
    );
    // "Ada%0D%0AX-Admin:%20true" decodes to a value with CR/LF.
    let sid = login_cookie(&app, "/name/Ada%0D%0AX-Admin:%20true").await;
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("Cookie", format!("session_id={sid}")))
            .insert_header(("X-User-Name", "spoofed"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = text(res).await;
    assert!(seen.contains("x-user-id: 7"), "{seen}");
    assert!(!seen.contains("x-user-name"), "{seen}");
    assert!(!seen.contains("x-admin"), "{seen}");
    assert!(!seen.contains("spoofed"), "{seen}");
}

#[actix_web::test]
async fn runtime_map_in_the_gateway_shape() {
    let yaml = "headers:\n  Authorization: name\n  X-Account: user_id\n";
    let config: HeaderMapConfig = serde_norway::from_str(yaml).unwrap();
    let map = MapSessionToHeader::<User>::with_config(&config).unwrap();
    let app = gateway!(manager(Config::default()), map);
    let sid = login_cookie(&app, "/login").await;
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("Cookie", format!("session_id={sid}")))
            .insert_header(("Authorization", "Bearer forged"))
            .insert_header(("x_account", "1"))
            .to_request(),
    )
    .await;
    let seen = text(res).await;
    assert!(seen.contains("authorization: Ada"), "{seen}");
    assert!(seen.contains("x-account: 42"), "{seen}");
    assert!(
        !seen.contains("forged") && !seen.contains("x_account"),
        "{seen}"
    );
    // The derive's own mappings are still there.
    assert!(seen.contains("x-user-id: 42"), "{seen}");
}

#[test]
fn unknown_field_is_a_start_up_error() {
    let config = HeaderMapConfig::new([("X-Role", "role")]);
    let error = MapSessionToHeader::<User>::with_config(&config).unwrap_err();
    assert!(matches!(error, HeaderMapError::UnknownField { .. }));
    assert!(error.to_string().contains("role"), "{error}");
    let bad_name = HeaderMapConfig::new([("X User", "user_id")]);
    assert!(MapSessionToHeader::<User>::with_config(&bad_name).is_err());
}

#[actix_web::test]
async fn wrong_order_is_a_500_naming_the_missing_middleware() {
    // Installed without a SessionMiddleware outside it.
    let app = test::init_service(
        App::new()
            .wrap(MapSessionToHeader::<User>::from_derive())
            .default_service(web::to(downstream)),
    )
    .await;
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/")
            .insert_header(("X-User-Id", "999"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let seen = text(res).await;
    assert!(seen.contains("no SessionMiddleware<"), "{seen}");
}

#[actix_web::test]
async fn disable_session_forward_with_mapping_downstream_sees_headers_not_the_token() {
    let config = Config::builder()
        .key_lookup("cookie:session_id,header:X-Session-ID")
        .disable_session_forward(true)
        .build()
        .unwrap();
    let app = gateway!(manager(config), MapSessionToHeader::<User>::from_derive());
    let sid = login_cookie(&app, "/login").await;
    for req in [
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("Cookie", format!("a=1; session_id={sid}"))),
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("X-Session-ID", sid.as_str())),
    ] {
        let res = test::call_service(&app, req.to_request()).await;
        let seen = text(res).await;
        assert!(seen.contains("x-user-id: 42"), "{seen}");
        assert!(!seen.contains(&sid), "{seen}");
    }
}

#[actix_web::test]
async fn store_failure_in_mapping_goes_to_the_error_handler() {
    let store = FailingStore::new();
    let manager = SessionManager::<User>::new(store.clone());
    let app = gateway!(manager, MapSessionToHeader::<User>::from_derive());
    let sid = login_cookie(&app, "/login").await;
    store.set_failing(true);
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/dashboard")
            .insert_header(("Cookie", format!("session_id={sid}")))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(res).await, "session storage unavailable");
}

#[test]
fn middlewares_can_be_built_once_and_shared_with_workers() {
    fn send_sync_clone<M: Send + Sync + Clone + 'static>(_: &M) {}
    send_sync_clone(&SessionMiddleware::new(manager(Config::default())));
    send_sync_clone(&MapSessionToHeader::<User>::from_derive());
}

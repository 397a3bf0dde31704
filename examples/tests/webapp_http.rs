//! The web app example over plain HTTP (no browser): what every signed-in
//! page tells caches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use sessionkit::MemoryStore;
use sessionkit_examples::webapp::{default_config, webapp_app, Webapp, COOKIE};

/// The value of the form's hidden `csrf_token` field, if the page has one.
fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = tag.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].to_owned())
}

/// The session cookie a response sets, if any.
fn set_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(|v| v[COOKIE.len() + 1..v.find(';').unwrap_or(v.len())].to_owned())
}

#[actix_web::test]
async fn every_signed_in_page_is_no_store() {
    let app = Webapp::with_store(default_config(), Arc::new(MemoryStore::new())).unwrap();
    let app = test::init_service(webapp_app(app)).await;

    // Sign in as a user would: the form first, then post it.
    let res = test::call_service(&app, TestRequest::get().uri("/login").to_request()).await;
    let mut jar = set_cookie(&res);
    let page = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let mut form = vec![
        ("username", "alice".to_owned()),
        ("password", "wonderland".to_owned()),
    ];
    if let Some(token) = csrf_field(&page) {
        form.push(("csrf_token", token));
    }
    let mut login = TestRequest::post().uri("/login").set_form(form);
    if let Some(id) = &jar {
        login = login.cookie(actix_web::cookie::Cookie::new(COOKIE, id.clone()));
    }
    let res = test::call_service(&app, login.to_request()).await;
    assert_eq!(res.status(), 303, "signed in");
    jar = set_cookie(&res).or(jar);
    let id = jar.expect("the sign-in sets the session cookie");

    for path in ["/", "/cart", "/devices", "/parallel", "/login", "/api/me"] {
        let req = TestRequest::get()
            .uri(path)
            .cookie(actix_web::cookie::Cookie::new(COOKIE, id.clone()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 200, "{path}");
        if matches!(path, "/devices" | "/api/me") {
            assert_eq!(
                set_cookie(&res),
                None,
                "{path}: no cookie to send, so the session layer adds no header of its own"
            );
        }
        assert_eq!(
            res.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store",
            "{path} is per-user: never cached"
        );
        if path == "/api/me" {
            let me: serde_json::Value = test::read_body_json(res).await;
            assert_eq!(me["user"], "alice", "still signed in");
        }
    }
}

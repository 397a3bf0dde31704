//! The web app example over plain HTTP (no browser): what every signed-in
//! page tells caches, the CSRF token every form carries, flash notices, and
//! the stylesheet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use sessionkit::MemoryStore;
use sessionkit_examples::webapp::{default_config, webapp_app, Webapp, COOKIE};

/// The value of the first hidden `csrf_token` field of `html`, if any.
fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = tag.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].to_owned())
}

/// The session cookie a response sets, if any (empty: removed).
fn set_cookie<B>(res: &ServiceResponse<B>) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(|v| v[COOKIE.len() + 1..v.find(';').unwrap_or(v.len())].to_owned())
}

/// The `<p id="notice">` text of a page, if it has one.
fn notice(html: &str) -> Option<String> {
    let at = html.find("id=\"notice\"")?;
    let start = at + html[at..].find('>')? + 1;
    Some(html[start..start + html[start..].find('<')?].to_owned())
}

/// A client with a cookie jar of one cookie, the session's.
#[derive(Default)]
struct Jar(Option<String>);

impl Jar {
    fn keep<B>(&mut self, res: &ServiceResponse<B>) {
        if let Some(id) = set_cookie(res) {
            self.0 = (!id.is_empty()).then_some(id);
        }
    }

    fn with(&self, mut req: TestRequest) -> TestRequest {
        if let Some(id) = &self.0 {
            req = req.cookie(actix_web::cookie::Cookie::new(COOKIE, id.clone()));
        }
        req
    }

    /// `GET path`: status and body.
    async fn get<S, B>(&mut self, app: &S, path: &str) -> (u16, String)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let res =
            test::call_service(app, self.with(TestRequest::get().uri(path)).to_request()).await;
        self.keep(&res);
        let status = res.status().as_u16();
        let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        (status, body)
    }

    /// `POST path` with the urlencoded `form`: status and `Location`.
    async fn post<S, B>(&mut self, app: &S, path: &str, form: &[(&str, &str)]) -> (u16, String)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let req = self.with(TestRequest::post().uri(path).set_form(form));
        let res = test::call_service(app, req.to_request()).await;
        self.keep(&res);
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status().as_u16(), location)
    }

    /// Signs in as alice through the sign-in page's form.
    async fn sign_in<S, B>(&mut self, app: &S)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let (_, page) = self.get(app, "/login").await;
        let token = csrf_field(&page).expect("the sign-in form carries a token");
        let form = [
            ("username", "alice"),
            ("password", "wonderland"),
            ("csrf_token", token.as_str()),
        ];
        assert_eq!(self.post(app, "/login", &form).await, (303, "/".to_owned()));
    }
}

#[actix_web::test]
async fn every_signed_in_page_is_no_store() {
    let app = Webapp::with_store(default_config(), Arc::new(MemoryStore::new())).unwrap();
    let app = test::init_service(webapp_app(app)).await;
    let mut jar = Jar::default();
    jar.sign_in(&app).await;
    // The first page after sign-in stores the new session's CSRF secret.
    assert_eq!(jar.get(&app, "/").await.0, 200);
    let id = jar.0.clone().expect("the sign-in sets the session cookie");

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
        let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        if path == "/api/me" {
            let me: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(me["user"], "alice", "still signed in");
        } else {
            assert!(
                body.contains("<link rel=\"stylesheet\" href=\"/style.css\">"),
                "{path} links the stylesheet"
            );
            assert!(!body.contains("style=\""), "{path}: no inline style");
            assert!(
                body.contains("<meta name=\"csrf-token\" content=\""),
                "{path} has the token for scripts"
            );
            assert_eq!(
                body.matches("<form").count(),
                body.matches("name=\"csrf_token\"").count(),
                "{path}: every form carries the token"
            );
        }
    }
}

#[actix_web::test]
async fn a_post_needs_the_pages_token() {
    let app = Webapp::with_store(default_config(), Arc::new(MemoryStore::new())).unwrap();
    let app = test::init_service(webapp_app(app)).await;
    let mut jar = Jar::default();
    jar.sign_in(&app).await;
    let (_, page) = jar.get(&app, "/cart").await;
    let token = csrf_field(&page).unwrap();

    // No token (curl -d, or a forged form the Origin check did not catch).
    let (status, _) = jar.post(&app, "/cart/add", &[("product", "fig")]).await;
    assert_eq!(status, 403, "a form without the token is refused");
    let (status, _) = jar
        .post(
            &app,
            "/cart/add",
            &[("product", "fig"), ("csrf_token", "bogus")],
        )
        .await;
    assert_eq!(status, 403, "a token that is not this session's is refused");
    let (status, _) = jar.post(&app, "/logout", &[]).await;
    assert_eq!(status, 403, "sign-out too");
    let (_, me) = jar.get(&app, "/api/me").await;
    assert!(me.contains("\"user\":\"alice\""), "still signed in: {me}");
    assert!(me.contains("\"cart\":{}"), "nothing added: {me}");

    // With the page's token: the same requests work (masked tokens are
    // not one-time: the same one again works too).
    let form = [("product", "fig"), ("csrf_token", token.as_str())];
    assert_eq!(
        jar.post(&app, "/cart/add", &form).await,
        (303, "/cart".to_owned())
    );
    assert_eq!(
        jar.post(&app, "/cart/add", &form).await,
        (303, "/cart".to_owned())
    );
    let (_, me) = jar.get(&app, "/api/me").await;
    assert!(me.contains("\"cart\":{\"fig\":2}"), "{me}");

    // A fetch sends it in the header instead.
    let req = jar.with(
        TestRequest::post()
            .uri("/api/ping")
            .insert_header(("X-CSRF-Token", token.as_str())),
    );
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 200, "the header token works");
    let res = test::call_service(
        &app,
        jar.with(TestRequest::post().uri("/api/ping")).to_request(),
    )
    .await;
    assert_eq!(res.status(), 403, "a fetch without the header is refused");

    // Signing out with the token; the token dies with the session.
    assert_eq!(
        jar.post(&app, "/logout", &[("csrf_token", token.as_str())])
            .await,
        (303, "/".to_owned())
    );
    let (status, _) = jar.post(&app, "/cart/add", &form).await;
    assert_eq!(status, 403, "a token from before the sign-out is refused");
}

#[actix_web::test]
async fn a_flash_notice_shows_once() {
    let app = Webapp::with_store(default_config(), Arc::new(MemoryStore::new())).unwrap();
    let app = test::init_service(webapp_app(app)).await;
    let mut jar = Jar::default();
    jar.sign_in(&app).await;
    let (_, home) = jar.get(&app, "/").await;
    assert_eq!(notice(&home).as_deref(), Some("Signed in as alice."));
    let (_, home) = jar.get(&app, "/").await;
    assert_eq!(notice(&home), None, "shown once");

    let token = csrf_field(&home).unwrap();
    let form = [("product", "pear"), ("csrf_token", token.as_str())];
    assert_eq!(jar.post(&app, "/cart/add", &form).await.0, 303);
    // An API call in between does not take it: only pages show notices.
    assert_eq!(jar.get(&app, "/api/me").await.0, 200);
    let (_, cart) = jar.get(&app, "/cart").await;
    assert_eq!(
        notice(&cart).as_deref(),
        Some("Added one pear to your cart.")
    );
    assert_eq!(notice(&jar.get(&app, "/cart").await.1), None, "shown once");

    assert_eq!(jar.post(&app, "/cart/remove", &form).await.0, 303);
    let (_, cart) = jar.get(&app, "/cart").await;
    assert_eq!(
        notice(&cart).as_deref(),
        Some("Removed one pear from your cart.")
    );

    let token = csrf_field(&cart).unwrap();
    assert_eq!(
        jar.post(&app, "/logout", &[("csrf_token", token.as_str())])
            .await,
        (303, "/".to_owned())
    );
    let (_, home) = jar.get(&app, "/").await;
    assert_eq!(notice(&home).as_deref(), Some("Signed out."));
    assert!(home.contains("id=\"sign-in-link\""), "signed out");
    assert_eq!(notice(&jar.get(&app, "/").await.1), None, "shown once");
}

#[actix_web::test]
async fn the_stylesheet_is_its_own_cacheable_file() {
    let app = Webapp::with_store(default_config(), Arc::new(MemoryStore::new())).unwrap();
    let app = test::init_service(webapp_app(app)).await;
    let res = test::call_service(&app, TestRequest::get().uri("/style.css").to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/css; charset=utf-8"
    );
    assert_eq!(
        res.headers().get(header::CACHE_CONTROL).unwrap(),
        "public, max-age=300",
        "the same for everyone, like /parallel.js"
    );
    assert_eq!(set_cookie(&res), None, "no session for a static file");
    let css = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        css.contains("form.inline"),
        "the class that replaced inline style"
    );
    let res = test::call_service(&app, TestRequest::get().uri("/parallel.js").to_request()).await;
    assert_eq!(
        res.headers().get(header::CACHE_CONTROL).unwrap(),
        "public, max-age=300"
    );
    let policy = res
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.starts_with("default-src 'self'") && !policy.contains("unsafe-inline"),
        "the CSP stays strict: {policy}"
    );
}

/// `SESSION_STORE=cookie`: sign-in with remember-me, the cart and sign-out
/// work with the session in an encrypted cookie; the devices page says the
/// store cannot list devices; nothing of the session shows in the cookie.
#[actix_web::test]
async fn the_shop_runs_on_the_cookie_store() {
    use sessionkit_examples::backend::{builder, Backend};
    use sessionkit_examples::keys::SessionKeys;
    let keys =
        SessionKeys::parse("d2ViYXBwLWNvb2tpZS1zdG9yZS10ZXN0LWtleS1vZi0zMi1i", false).unwrap();
    let manager = builder(Some(&keys), &Backend::Cookie, default_config()).unwrap();
    let app = test::init_service(webapp_app(Webapp::new(manager).unwrap())).await;
    let mut jar = Jar::default();
    let (_, page) = jar.get(&app, "/login").await;
    let token = csrf_field(&page).unwrap();
    let form = [
        ("username", "alice"),
        ("password", "wonderland"),
        ("remember", "on"),
        ("csrf_token", token.as_str()),
    ];
    assert_eq!(jar.post(&app, "/login", &form).await, (303, "/".to_owned()));
    let cookie = jar.0.clone().unwrap();
    assert!(!cookie.contains("alice"), "a private cookie shows nothing");
    let (_, page) = jar.get(&app, "/cart").await;
    let token = csrf_field(&page).unwrap();
    for product in ["apple", "apple", "pear"] {
        let form = [("product", product), ("csrf_token", token.as_str())];
        assert_eq!(jar.post(&app, "/cart/add", &form).await.0, 303);
    }
    let (status, me) = jar.get(&app, "/api/me").await;
    assert_eq!(status, 200);
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["remember"], true);
    assert_eq!(me["cart"]["apple"], 2);
    assert_eq!(me["cart"]["pear"], 1);
    let (status, devices) = jar.get(&app, "/devices").await;
    assert_eq!(status, 200);
    assert!(devices.contains("id=\"no-devices\""), "{devices}");
    assert!(devices.contains("cannot list your devices"), "{devices}");
    let token = csrf_field(&devices).unwrap();
    assert_eq!(
        jar.post(
            &app,
            "/devices/sign-out-others",
            &[("csrf_token", token.as_str())]
        )
        .await,
        (303, "/devices".to_owned())
    );
    let (_, page) = jar.get(&app, "/devices").await;
    assert!(
        notice(&page).unwrap().contains("cannot be signed out"),
        "{page}"
    );
    let token = csrf_field(&page).unwrap();
    assert_eq!(
        jar.post(&app, "/logout", &[("csrf_token", token.as_str())])
            .await,
        (303, "/".to_owned())
    );
    let (_, me) = jar.get(&app, "/api/me").await;
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["user"], serde_json::Value::Null, "signed out");
    assert_eq!(me["cart"], serde_json::json!({}));
}

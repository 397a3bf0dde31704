//! The web app example in a real browser: headless Chromium over WebDriver,
//! started by the tests (`apt-get install chromium chromium-driver`).
//!
//! The flows run on the memory store, and the store-dependent ones also on
//! Redis (a Cluster for the parallel page) and on PostgreSQL: a server the
//! test starts, the store made from its URL as `DATABASE_URL` makes it.
//!
//! Each flow serves the app on 127.0.0.1 (port 0) with a manual clock, so
//! "later" (the id's auto-renew time) is a step of the test, not a sleep.
//! A failing flow leaves screenshots and page sources under
//! `target/tmp/browser-failures/<flow>/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::HttpServer;
use sessionkit::clock::ManualClock;
use sessionkit::store::DynSessionStore;
use sessionkit::{Config, MemoryStore, RedisStore, SessionManager};
use sessionkit_examples::gateway::store_from_env_values;
use sessionkit_examples::webapp::{
    default_config, webapp_app, WebSession, Webapp, COOKIE, PRODUCTS,
};
use sessionkit_tests::browser::fantoccini::{Client, Locator};
use sessionkit_tests::browser::{
    click, exists, text_of, type_into, wait_for, Chromedriver, Flow, WAIT,
};
use sessionkit_tests::postgres_server::PostgresServer;
use sessionkit_tests::redis_server::{unique_prefix, RedisCluster, RedisServer};
use std::sync::Arc;

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

/// The id is renewed a minute after it was issued in these tests.
const RENEW_AFTER: Duration = Duration::from_secs(60);

struct Site {
    base: String,
    clock: ManualClock,
    handle: ServerHandle,
    /// The PostgreSQL server of a [`Site::postgres`], stopped with the site.
    postgres: Option<PostgresServer>,
}

impl Site {
    async fn start(store: Arc<dyn DynSessionStore>) -> Self {
        let mut config: Config = default_config();
        config.auto_renew_after = RENEW_AFTER;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let clock = ManualClock::new(u64::try_from(now.as_millis()).unwrap());
        let manager = SessionManager::<WebSession>::builder(store)
            .config(config)
            .clock(clock.clone());
        let app = Webapp::new(manager).unwrap();
        let server = HttpServer::new(move || webapp_app(app.clone()))
            .workers(2)
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            clock,
            handle,
            postgres: None,
        }
    }

    async fn memory() -> Self {
        Self::start(Arc::new(MemoryStore::new())).await
    }

    async fn redis() -> Self {
        let store = RedisStore::builder(RedisServer::shared().url());
        Self::start(Arc::new(
            store.prefix(unique_prefix("webapp")).build().unwrap(),
        ))
        .await
    }

    async fn redis_cluster() -> Self {
        let store = RedisStore::cluster_builder(RedisCluster::shared().urls());
        Self::start(Arc::new(
            store.prefix(unique_prefix("webapp")).build().unwrap(),
        ))
        .await
    }

    /// On a PostgreSQL of its own (the flows count a user's devices, so no
    /// two flows share the default table), the store made from its URL as
    /// `DATABASE_URL` makes it (`store_from_env_values`).
    async fn postgres() -> Self {
        let server = PostgresServer::start();
        let store = store_from_env_values(None, Some(&server.url()))
            .await
            .unwrap();
        let mut site = Self::start(store).await;
        site.postgres = Some(server);
        site
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(self) {
        self.handle.stop(false).await;
        drop(self.postgres);
    }
}

/// Clicks the button `css` selects and waits for the page it leads to
/// (not just for the click: the old page may still be showing).
async fn submit(browser: &Client, css: &str) {
    wait_for(browser, css).await;
    browser
        .execute("document.body.dataset.old = 'yes'", vec![])
        .await
        .unwrap();
    click(browser, css).await;
    wait_for(browser, "body:not([data-old])").await;
}

/// Signs in on the home page's form.
async fn sign_in(browser: &Client, site: &Site, user: &str, password: &str, remember: bool) {
    browser.goto(&site.url("/")).await.unwrap();
    type_into(browser, "#username", user).await;
    type_into(browser, "#password", password).await;
    if remember {
        click(browser, "#remember").await;
    }
    submit(browser, "#sign-in").await;
}

/// Who the page says is signed in (`None`: the sign-in link shows).
async fn signed_in_as(browser: &Client) -> Option<String> {
    wait_for(browser, "#user, #sign-in-link").await;
    if exists(browser, "#user").await {
        let text = text_of(browser, "#user b").await;
        Some(text)
    } else {
        None
    }
}

/// The browser's session cookies for the site (name `webapp_session`).
async fn session_cookies(browser: &Client) -> Vec<cookie::Cookie<'static>> {
    browser
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name() == COOKIE)
        .collect()
}

#[actix_web::test]
async fn sign_in_cart_and_sign_out() {
    sign_in_cart_and_sign_out_on(Site::memory().await, "sign_in_cart_and_sign_out").await;
}

#[actix_web::test]
async fn sign_in_cart_and_sign_out_on_postgres() {
    sign_in_cart_and_sign_out_on(Site::postgres().await, "sign_in_cart_and_sign_out_pg").await;
}

/// A wrong password, a cart before signing in kept after it, the id renewed
/// at sign-in, a notice shown once, sign-out, and the old id dead.
async fn sign_in_cart_and_sign_out_on(site: Site, name: &str) {
    let driver = Chromedriver::start();
    let flow = Flow::new(name, TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        // A wrong password: the form again, with an error, nobody signed in.
        sign_in(&browser, &site, "alice", "not-her-password", false).await;
        assert_eq!(
            text_of(&browser, "#error").await,
            "Wrong user name or password."
        );
        assert_eq!(signed_in_as(&browser).await, None);

        // A fig in the cart before signing in is still there after.
        browser.goto(&site.url("/cart")).await.unwrap();
        browser
            .find(Locator::Css("#product"))
            .await
            .unwrap()
            .select_by_value("fig")
            .await
            .unwrap();
        click(&browser, "#add-button").await;
        assert_eq!(
            text_of(&browser, "tr[data-product=fig] .quantity").await,
            "1"
        );
        let anonymous = session_cookies(&browser).await;
        assert_eq!(anonymous.len(), 1, "the cart made a session");

        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        assert_eq!(text_of(&browser, "#notice").await, "Signed in as alice.");
        assert_eq!(text_of(&browser, "#cart-count").await, "1");
        let signed_in = session_cookies(&browser).await;
        assert_eq!(signed_in.len(), 1);
        assert_ne!(
            signed_in[0].value(),
            anonymous[0].value(),
            "signing in gives the session a new id"
        );

        // The notice was shown once.
        browser.goto(&site.url("/")).await.unwrap();
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        assert!(!exists(&browser, "#notice").await);

        submit(&browser, "#sign-out").await;
        assert_eq!(signed_in_as(&browser).await, None);
        assert_eq!(text_of(&browser, "#notice").await, "Signed out.");
        // The signed-in cookie is gone; the page's sign-in form (its CSRF
        // token) started a new anonymous session.
        let after = session_cookies(&browser).await;
        assert!(
            after.iter().all(|c| c.value() != signed_in[0].value()),
            "signing out removes the signed-in cookie"
        );
        // The old id is dead: planting it back gives nobody's session.
        // (Set from a script: WebDriver cannot add a cookie for an IP host;
        // the HttpOnly anonymous cookie is deleted first, as a script
        // cannot overwrite it.)
        browser.delete_cookie(COOKIE).await.unwrap();
        let plant = format!(
            "document.cookie = '{COOKIE}={}; path=/'",
            signed_in[0].value()
        );
        browser.execute(&plant, vec![]).await.unwrap();
        assert_eq!(session_cookies(&browser).await.len(), 1);
        browser.goto(&site.url("/")).await.unwrap();
        assert_eq!(signed_in_as(&browser).await, None);
        assert_eq!(text_of(&browser, "#cart-count").await, "0");
    })
    .await;
    site.stop().await;
}

#[actix_web::test]
async fn the_cookie_is_stored_with_its_flags() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("the_cookie_is_stored_with_its_flags", TMP);
    let plain = flow.open(&driver, "plain", &flow.profile("plain")).await;
    let remembered = flow
        .open(&driver, "remembered", &flow.profile("remembered"))
        .await;
    flow.run(async {
        sign_in(&plain, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&plain).await.as_deref(), Some("alice"));
        let cookies = session_cookies(&plain).await;
        assert_eq!(cookies.len(), 1);
        let cookie = &cookies[0];
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(
            cookie.expires_datetime(),
            None,
            "a plain sign-in is a browser-session cookie"
        );
        let visible = plain
            .execute("return document.cookie", vec![])
            .await
            .unwrap();
        assert!(
            !visible.as_str().unwrap_or_default().contains(COOKIE),
            "HttpOnly: scripts cannot read the session cookie ({visible})"
        );

        sign_in(&remembered, &site, "alice", "wonderland", true).await;
        assert_eq!(signed_in_as(&remembered).await.as_deref(), Some("alice"));
        let cookies = session_cookies(&remembered).await;
        assert_eq!(cookies.len(), 1);
        let expires = cookies[0]
            .expires_datetime()
            .expect("remember-me stores a persistent cookie");
        let in_days = (expires - cookie::time::OffsetDateTime::now_utc()).whole_days();
        assert!(
            (29..=30).contains(&in_days),
            "Max-Age is the 30-day idle timeout, the browser keeps it {in_days} days"
        );
        assert_eq!(cookies[0].http_only(), Some(true));
        assert_eq!(cookies[0].same_site(), Some(cookie::SameSite::Lax));
    })
    .await;
    site.stop().await;
}

#[actix_web::test]
async fn remember_me_survives_a_browser_restart_and_a_plain_sign_in_does_not() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("remember_me_survives_a_browser_restart", TMP);
    let (remembered_profile, plain_profile) = (flow.profile("remembered"), flow.profile("plain"));
    flow.clone()
        .run(async {
            let remembered = flow.open(&driver, "remembered", &remembered_profile).await;
            let plain = flow.open(&driver, "plain", &plain_profile).await;
            sign_in(&remembered, &site, "alice", "wonderland", true).await;
            assert_eq!(signed_in_as(&remembered).await.as_deref(), Some("alice"));
            sign_in(&plain, &site, "bob", "builder", false).await;
            assert_eq!(signed_in_as(&plain).await.as_deref(), Some("bob"));

            // Quit both browsers, then start them again on the same profiles.
            flow.close("remembered").await;
            flow.close("plain").await;
            let remembered = flow
                .open(&driver, "remembered-again", &remembered_profile)
                .await;
            let plain = flow.open(&driver, "plain-again", &plain_profile).await;

            remembered.goto(&site.url("/")).await.unwrap();
            assert_eq!(
                signed_in_as(&remembered).await.as_deref(),
                Some("alice"),
                "remember-me keeps the user signed in across a browser restart"
            );
            plain.goto(&site.url("/")).await.unwrap();
            assert_eq!(
                signed_in_as(&plain).await,
                None,
                "a plain sign-in ends with the browser"
            );
        })
        .await;
    site.stop().await;
}

/// A plain sign-in on a browser that was remembered before forgets it: the
/// cookie becomes a browser-session cookie again and a restart signs out.
#[actix_web::test]
async fn a_plain_sign_in_after_remember_me_is_not_remembered() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("a_plain_sign_in_after_remember_me", TMP);
    let profile = flow.profile("browser");
    flow.clone()
        .run(async {
            let browser = flow.open(&driver, "browser", &profile).await;
            sign_in(&browser, &site, "alice", "wonderland", true).await;
            assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
            let cookies = session_cookies(&browser).await;
            assert!(cookies[0].expires_datetime().is_some(), "remembered");

            // Sign in again on the sign-in page, without "remember me".
            browser.goto(&site.url("/login")).await.unwrap();
            type_into(&browser, "#username", "bob").await;
            type_into(&browser, "#password", "builder").await;
            submit(&browser, "#sign-in").await;
            assert_eq!(signed_in_as(&browser).await.as_deref(), Some("bob"));
            let cookies = session_cookies(&browser).await;
            assert_eq!(cookies.len(), 1);
            assert_eq!(
                cookies[0].expires_datetime(),
                None,
                "a plain sign-in is a browser-session cookie, remembered before or not"
            );
            let me: serde_json::Value = serde_json::from_str(
                browser
                    .execute(
                        "return await (await fetch('/api/me', {credentials: 'same-origin'})).text()",
                        vec![],
                    )
                    .await
                    .unwrap()
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(me["remember"], false, "{me}");

            flow.close("browser").await;
            let browser = flow.open(&driver, "browser-again", &profile).await;
            browser.goto(&site.url("/")).await.unwrap();
            assert_eq!(
                signed_in_as(&browser).await,
                None,
                "the plain sign-in ended with the browser"
            );
        })
        .await;
    site.stop().await;
}

/// Two browsers are two devices: both listed, one signs the other out.
async fn two_devices(site: Site, name: &str) {
    let driver = Chromedriver::start();
    let flow = Flow::new(name, TMP);
    let laptop = flow.open(&driver, "laptop", &flow.profile("laptop")).await;
    let phone = flow.open(&driver, "phone", &flow.profile("phone")).await;
    flow.run(async {
        sign_in(&laptop, &site, "alice", "wonderland", false).await;
        sign_in(&phone, &site, "alice", "wonderland", true).await;
        assert_eq!(signed_in_as(&phone).await.as_deref(), Some("alice"));
        let phone_id = session_cookies(&phone).await[0].value().to_owned();

        laptop.goto(&site.url("/devices")).await.unwrap();
        assert_eq!(text_of(&laptop, "#device-count").await, "2");
        let rows = laptop.find_all(Locator::Css("tr.device")).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            laptop
                .find_all(Locator::Css("tr.device.current"))
                .await
                .unwrap()
                .len(),
            1,
            "exactly one row is this device"
        );
        assert!(
            text_of(&laptop, "tr.device:not(.current)")
                .await
                .contains("(remembered)"),
            "the phone's row says it is remembered"
        );
        let page = laptop.source().await.unwrap();
        for cookie in session_cookies(&laptop)
            .await
            .iter()
            .chain(&session_cookies(&phone).await)
        {
            assert!(
                !page.contains(cookie.value()),
                "the devices page never shows a session id"
            );
        }

        // The laptop signs the phone out.
        submit(&laptop, "tr.device:not(.current) button.revoke").await;
        assert_eq!(text_of(&laptop, "#notice").await, "Signed out that device.");
        assert_eq!(text_of(&laptop, "#device-count").await, "1");

        // The phone's next page: signed out, its cookie replaced (the
        // page's forms start a new anonymous session).
        phone.goto(&site.url("/cart")).await.unwrap();
        assert_eq!(signed_in_as(&phone).await, None);
        assert!(session_cookies(&phone)
            .await
            .iter()
            .all(|c| c.value() != phone_id));

        // The phone signs in again, then the laptop signs out everywhere.
        sign_in(&phone, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&phone).await.as_deref(), Some("alice"));
        laptop.goto(&site.url("/devices")).await.unwrap();
        assert_eq!(text_of(&laptop, "#device-count").await, "2");
        submit(&laptop, "#sign-out-everywhere").await;
        assert_eq!(signed_in_as(&laptop).await, None);
        phone.goto(&site.url("/devices")).await.unwrap();
        // Signed out: the devices page sends the phone to the sign-in form.
        assert!(phone
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/login"));
        assert_eq!(signed_in_as(&phone).await, None);
    })
    .await;
    site.stop().await;
}

#[actix_web::test]
async fn two_browsers_are_two_devices_and_one_signs_the_other_out() {
    two_devices(Site::memory().await, "two_devices_memory").await;
}

#[actix_web::test]
async fn two_browsers_are_two_devices_on_redis() {
    two_devices(Site::redis().await, "two_devices_redis").await;
}

#[actix_web::test]
async fn two_browsers_are_two_devices_on_postgres() {
    two_devices(Site::postgres().await, "two_devices_postgres").await;
}

/// The page of 8 parallel `fetch()` calls, opened when the id is due for
/// renewal: every call is served as the user, every ping is counted, and
/// the browser ends with one cookie, the renewed id.
async fn parallel_requests_at_renewal(site: Site, name: &str) {
    let driver = Chromedriver::start();
    let flow = Flow::new(name, TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        let before = session_cookies(&browser).await;
        assert_eq!(before.len(), 1);

        // The id is now due for renewal: the 8 requests all carry it.
        site.clock.advance(RENEW_AFTER + Duration::from_secs(1));
        browser.goto(&site.url("/parallel")).await.unwrap();
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath("//span[@id='status'][text()='done']"))
            .await
            .unwrap_or_else(|_| panic!("the 8 requests did not finish"));
        let results = browser.find_all(Locator::Css("li.result")).await.unwrap();
        assert_eq!(results.len(), 8);
        for result in &results {
            assert_eq!(
                result.attr("data-status").await.unwrap().as_deref(),
                Some("200")
            );
            assert_eq!(
                result.attr("data-user").await.unwrap().as_deref(),
                Some("alice")
            );
        }

        let after = session_cookies(&browser).await;
        assert_eq!(after.len(), 1, "one session cookie after the renewal");
        assert_ne!(after[0].value(), before[0].value(), "the id was renewed");

        // Still signed in, on one device, with the renewed id.
        browser.goto(&site.url("/devices")).await.unwrap();
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        assert_eq!(text_of(&browser, "#device-count").await, "1");
        let me = browser.execute("return fetch('/api/me').then(r => r.json())", vec![]);
        let me = me.await.unwrap();
        assert_eq!(me["user"], "alice");
        assert_eq!(me["pings"], 8, "every one of the 8 pings was counted");
        assert_eq!(session_cookies(&browser).await[0].value(), after[0].value());
    })
    .await;
    site.stop().await;
}

#[actix_web::test]
async fn parallel_requests_at_renewal_leave_one_cookie() {
    parallel_requests_at_renewal(Site::memory().await, "parallel_memory").await;
}

#[actix_web::test]
async fn parallel_requests_at_renewal_on_redis_cluster() {
    parallel_requests_at_renewal(Site::redis_cluster().await, "parallel_cluster").await;
}

#[actix_web::test]
async fn parallel_requests_at_renewal_on_postgres() {
    parallel_requests_at_renewal(Site::postgres().await, "parallel_postgres").await;
}

#[actix_web::test]
async fn a_form_posted_from_another_site_is_refused() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("a_form_posted_from_another_site_is_refused", TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        // A page of another origin posts the sign-out form to the site.
        let forged = format!(
            "data:text/html,<form method=post action='{}'><button id=go>go</button></form>",
            site.url("/logout")
        );
        browser.goto(&forged).await.unwrap();
        click(&browser, "#go").await;
        assert_eq!(text_of(&browser, "h1").await, "Forbidden");
        browser.goto(&site.url("/")).await.unwrap();
        assert_eq!(
            signed_in_as(&browser).await.as_deref(),
            Some("alice"),
            "the forged sign-out did nothing"
        );
    })
    .await;
    site.stop().await;
}

/// Another site: one page whose form posts `fields` to `action`.
async fn other_site(action: &str, fields: &str) -> (String, ServerHandle) {
    let page = format!(
        "<!doctype html><title>elsewhere</title><form method=post action='{action}'>{fields}\
         <button id=go>Win a prize</button></form>"
    );
    let server = HttpServer::new(move || {
        let page = page.clone();
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(move || {
                let page = page.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(page)
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    // `localhost`, not `127.0.0.1`: another host, so another site.
    (format!("http://localhost:{port}/"), handle)
}

/// The cart's quantity of `product` as the signed-in page shows it.
async fn quantity(browser: &Client, site: &Site, product: &str) -> Option<String> {
    browser.goto(&site.url("/cart")).await.unwrap();
    wait_for(browser, "#cart").await;
    let css = format!("tr[data-product={product}] .quantity");
    if exists(browser, &css).await {
        Some(text_of(browser, &css).await)
    } else {
        None
    }
}

#[actix_web::test]
async fn a_form_posted_from_another_origin_is_refused() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    // The forger copies the form, with a token it made up (it cannot read
    // the victim's).
    let (elsewhere, other) = other_site(
        &site.url("/cart/add"),
        "<input type=hidden name=product value=fig>\
         <input type=hidden name=csrf_token value=forged-token-forged-token-forged>",
    )
    .await;
    let flow = Flow::new("a_form_posted_from_another_origin_is_refused", TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        browser.goto(&elsewhere).await.unwrap();
        submit(&browser, "#go").await;
        assert_eq!(text_of(&browser, "h1").await, "Forbidden");
        assert_eq!(
            quantity(&browser, &site, "fig").await,
            None,
            "nothing added"
        );
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
    })
    .await;
    other.stop(false).await;
    site.stop().await;
}

#[actix_web::test]
async fn a_form_with_its_token_works_and_without_it_is_refused() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("a_form_with_its_token_works", TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));

        // The same page's form, its token field taken out: sessionkit's
        // check refuses it (the Origin check alone would let it through).
        browser.goto(&site.url("/cart")).await.unwrap();
        wait_for(&browser, "#add").await;
        browser
            .execute(
                "document.querySelector('#add input[name=csrf_token]').remove()",
                vec![],
            )
            .await
            .unwrap();
        submit(&browser, "#add-button").await;
        assert_eq!(text_of(&browser, "h1").await, "Forbidden");
        assert!(
            text_of(&browser, "#refused")
                .await
                .contains("CSRF token missing"),
            "the page says why"
        );
        assert_eq!(quantity(&browser, &site, "fig").await, None);

        // With its token, as served.
        browser
            .find(Locator::Css("#product"))
            .await
            .unwrap()
            .select_by_value("fig")
            .await
            .unwrap();
        submit(&browser, "#add-button").await;
        assert_eq!(
            text_of(&browser, "#notice").await,
            "Added one fig to your cart."
        );
        assert_eq!(
            text_of(&browser, "tr[data-product=fig] .quantity").await,
            "1"
        );
        // The sign-out form in the navigation carries one too.
        submit(&browser, "#sign-out").await;
        assert_eq!(text_of(&browser, "#notice").await, "Signed out.");
        assert_eq!(signed_in_as(&browser).await, None);
    })
    .await;
    site.stop().await;
}

/// Two windows of one browser load the next page at the same moment after
/// a cart change: the notice shows in exactly one of them.
#[actix_web::test]
async fn a_flash_notice_shows_once_with_two_tabs_open() {
    let driver = Chromedriver::start();
    let site = Site::memory().await;
    let flow = Flow::new("a_flash_notice_shows_once_with_two_tabs", TMP);
    let browser = flow
        .open(&driver, "browser", &flow.profile("browser"))
        .await;
    flow.run(async {
        sign_in(&browser, &site, "alice", "wonderland", false).await;
        assert_eq!(signed_in_as(&browser).await.as_deref(), Some("alice"));
        let first = browser.window().await.unwrap();
        let second = browser.new_window(false).await.unwrap().handle;
        browser.switch_to_window(second.clone()).await.unwrap();
        browser.goto(&site.url("/devices")).await.unwrap();
        wait_for(&browser, "#devices").await;
        browser.switch_to_window(first.clone()).await.unwrap();

        for (round, product) in PRODUCTS.iter().enumerate() {
            // The first window adds to the cart as its form would, without
            // following the redirect: the notice waits in the session.
            browser.goto(&site.url("/cart")).await.unwrap();
            wait_for(&browser, "#cart").await;
            let status = browser
                .execute(
                    "const token = document.querySelector('meta[name=\"csrf-token\"]').content;\
                     const body = new URLSearchParams({ product: arguments[0], csrf_token: token });\
                     const res = await fetch('/cart/add', { method: 'POST', body, redirect: 'manual' });\
                     return res.type;",
                    vec![serde_json::json!(product)],
                )
                .await
                .unwrap();
            assert_eq!(status, "opaqueredirect", "the add was answered 303");

            // Both windows open /cart at the same moment.
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 700;
            for window in [&first, &second] {
                browser.switch_to_window(window.clone()).await.unwrap();
                browser
                    .execute(
                        "document.body.dataset.old = 'yes';\
                         setTimeout(() => location.assign('/cart'), Math.max(0, arguments[0] - Date.now()));",
                        vec![serde_json::json!(u64::try_from(at).unwrap())],
                    )
                    .await
                    .unwrap();
            }
            let mut shown = Vec::new();
            for window in [&first, &second] {
                browser.switch_to_window(window.clone()).await.unwrap();
                wait_for(&browser, "body:not([data-old]) #cart").await;
                assert_eq!(
                    text_of(&browser, &format!("tr[data-product={product}] .quantity")).await,
                    "1"
                );
                if exists(&browser, "#notice").await {
                    shown.push(text_of(&browser, "#notice").await);
                }
            }
            assert_eq!(
                shown,
                vec![format!("Added one {product} to your cart.")],
                "round {round}: the notice shows in exactly one window"
            );
            browser.switch_to_window(first.clone()).await.unwrap();
        }
    })
    .await;
    site.stop().await;
}

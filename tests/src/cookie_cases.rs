//! The cookie store over HTTP, on any adapter: what a client holding the
//! latest cookie sees (timeouts, CSRF, flash, logout), hostile cookies,
//! key rotation, the size limit, and what the store says it cannot do.
//!
//! `cookie_store_cases!(TheAdapter)` expands into one test per case; the
//! conformance test files of both adapters call it. The conformance cases
//! that hold as written run on the cookie store through
//! `cookie_conformance_suites!`.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sessionkit::clock::ManualClock;
use sessionkit::keys::Keyring;
use sessionkit::store::StoreError;
use sessionkit::{
    Config, ConfigError, CookieStore, Csrf, HeaderMapping, SessionError, SessionManager,
};

use crate::conformance::{Adapter, AppSpec, Layout, Req, Res, User, UserSessionExt};

/// Expands into one `#[test]` per cookie store case for adapter `$adapter`.
#[macro_export]
macro_rules! cookie_store_cases {
    ($adapter:ty) => {
        $crate::cookie_store_cases!(@cases $adapter;
            the_session_travels_in_the_cookie_and_nothing_is_on_the_server,
            private_cookies_hide_the_session_signed_ones_show_it,
            every_changed_character_gives_a_fresh_session,
            truncated_and_re_encoded_cookies_give_a_fresh_session,
            cookies_spliced_between_users_or_made_for_another_name_give_a_fresh_session,
            key_rotation_keeps_old_cookies_and_re_seals_them_until_the_key_is_removed,
            an_oversized_cookie_is_ignored,
            a_session_too_large_for_a_cookie_fails_the_commit_and_sends_nothing,
            a_replayed_cookie_past_its_idle_timeout_opens_to_nothing,
            a_replayed_cookie_past_its_absolute_timeout_opens_to_nothing,
            a_replayed_cookie_after_logout_still_opens_until_its_idle_timeout,
            concurrent_requests_do_not_merge_the_last_response_wins,
            csrf_a_token_from_before_sign_in_is_refused_after_it,
            flash_shows_once_to_the_latest_cookie,
            what_needs_a_server_store_is_refused_when_the_manager_is_built,
        );
    };
    (@cases $adapter:ty; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            <$adapter as $crate::conformance::Adapter>::block_on(
                $crate::cookie_cases::$case::<$adapter>(),
            );
        }
    )*};
}

const T0: u64 = 1_700_000_000_000;
const COOKIE: &str = "session_id";

fn keys(list: &[u8]) -> Keyring {
    let mut secrets = list.iter().map(|&b| [b; 32]);
    let primary = secrets.next().expect("a primary key");
    Keyring::new(primary, secrets.collect::<Vec<_>>()).expect("keyring")
}

fn manager(cookies: CookieStore, config: Config, clock: &ManualClock) -> SessionManager<User> {
    SessionManager::cookie_builder(cookies)
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid config")
}

fn private(list: &[u8], clock: &ManualClock) -> SessionManager<User> {
    manager(CookieStore::private(keys(list)), Config::default(), clock)
}

async fn app<A: Adapter>(manager: SessionManager<User>) -> A::App {
    A::build(AppSpec::new(manager)).await
}

/// A client that keeps the latest session cookie, as a browser does.
#[derive(Debug, Default, Clone)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    async fn send<A: Adapter>(&mut self, app: &A::App, req: Req) -> Res {
        let res = A::call(app, self.with_cookie(req)).await;
        self.keep(&res);
        res
    }

    fn with_cookie(&self, req: Req) -> Req {
        match &self.cookie {
            Some(value) => req.cookie(COOKIE, value),
            None => req,
        }
    }

    fn keep(&mut self, res: &Res) {
        if let Some(cookie) = res.set_cookie(COOKIE) {
            let removal =
                cookie.value().is_empty() || cookie.max_age() == Some(cookie::time::Duration::ZERO);
            self.cookie = (!removal).then(|| cookie.value().to_owned());
        }
    }

    fn value(&self) -> String {
        self.cookie.clone().expect("a session cookie")
    }
}

/// What a request with cookie `value` sees on `GET /read`: the count, and
/// whether the response cleared the cookie.
async fn read_with<A: Adapter>(app: &A::App, value: &str) -> (String, bool) {
    let res = A::call(app, Req::get("/read").cookie(COOKIE, value)).await;
    assert_eq!(res.status, 200, "a bad cookie is never an error");
    let cleared = res.set_cookie(COOKIE).is_some_and(|c| c.value().is_empty());
    (res.body, cleared)
}

/// Three visits, kept in the cookie.
async fn visited_three_times<A: Adapter>(app: &A::App) -> Browser {
    let mut browser = Browser::default();
    for n in 1..=3 {
        assert_eq!(
            browser.send::<A>(app, Req::get("/visit")).await.body,
            n.to_string()
        );
    }
    browser
}

/// Each response to a change carries the new session; nothing is kept on
/// the server, so by-id operations say they are unsupported.
pub async fn the_session_travels_in_the_cookie_and_nothing_is_on_the_server<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let manager = private(&[1], &clock);
    let app = app::<A>(manager.clone()).await;
    let mut browser = Browser::default();
    let mut values = Vec::new();
    for n in 1..=3 {
        let res = browser.send::<A>(&app, Req::get("/visit")).await;
        assert_eq!(res.body, n.to_string());
        assert_eq!(res.header("cache-control"), Some("no-store"));
        values.push(browser.value());
    }
    values.dedup();
    assert_eq!(values.len(), 3, "the cookie changes with the session");
    // A read that changes nothing sends no cookie.
    let res = browser.send::<A>(&app, Req::get("/read")).await;
    assert_eq!(res.body, "3");
    assert!(res.set_cookie(COOKIE).is_none());
    // The id inside is not a server-side key.
    let id = browser.send::<A>(&app, Req::get("/id")).await.body;
    for result in [
        manager.load_by_id(&id).await.map(|_| ()),
        manager.delete_by_id(&id).await,
        manager.list_sessions(&1u64, None).await.map(|_| ()),
        {
            let session = manager.create().expect("an id");
            session.set_visits(1);
            session.save().await
        },
    ] {
        assert!(
            matches!(result, Err(SessionError::Store(StoreError::Unsupported(_)))),
            "{result:?}"
        );
    }
}

/// A private cookie shows nothing of the session; a signed one shows the
/// fields but cannot be changed.
pub async fn private_cookies_hide_the_session_signed_ones_show_it<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let gateway = |cookies| {
        let manager = manager(cookies, Config::default(), &clock);
        AppSpec::with(manager, Layout::Gateway(HeaderMapping::from_derive()))
    };
    for (cookies, readable) in [
        (CookieStore::private(keys(&[1])), false),
        (CookieStore::signed(keys(&[1])), true),
    ] {
        let app = A::build(gateway(cookies)).await;
        let mut browser = Browser::default();
        let res = browser.send::<A>(&app, Req::post("/name/Grace")).await;
        assert_eq!(res.status, 200);
        let value = browser.value();
        let payload = URL_SAFE_NO_PAD
            .decode(value.split('.').next().expect("a payload"))
            .expect("base64url");
        let shows = payload.windows(5).any(|w| w == b"Grace");
        assert_eq!(shows, readable);
    }
}

/// Every character of a cookie replaced by another gives a fresh, empty
/// session, and the response clears the cookie.
pub async fn every_changed_character_gives_a_fresh_session<A: Adapter>() {
    let clock = ManualClock::new(T0);
    for cookies in [
        CookieStore::private(keys(&[1])),
        CookieStore::signed(keys(&[1])),
    ] {
        let app = app::<A>(manager(cookies, Config::default(), &clock)).await;
        let value = visited_three_times::<A>(&app).await.value();
        assert_eq!(read_with::<A>(&app, &value).await, ("3".to_owned(), false));
        for position in 0..value.len() {
            let mut changed = value.clone().into_bytes();
            changed[position] = if changed[position] == b'A' {
                b'B'
            } else {
                b'A'
            };
            let changed = String::from_utf8(changed).expect("ASCII");
            let (body, cleared) = read_with::<A>(&app, &changed).await;
            // The last character of unpadded base64 carries unused bits:
            // only a change that keeps the bytes may keep the session.
            let same_bytes = URL_SAFE_NO_PAD.decode(changed.split('.').next().unwrap_or(""))
                == URL_SAFE_NO_PAD.decode(value.split('.').next().unwrap_or(""))
                && changed.split('.').nth(1).map(|t| URL_SAFE_NO_PAD.decode(t))
                    == value.split('.').nth(1).map(|t| URL_SAFE_NO_PAD.decode(t));
            if !same_bytes {
                assert_eq!((body.as_str(), cleared), ("0", true), "position {position}");
            }
        }
    }
}

/// Cut short, or the same bytes in another encoding: a fresh session.
pub async fn truncated_and_re_encoded_cookies_give_a_fresh_session<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let app = app::<A>(private(&[1], &clock)).await;
    let value = visited_three_times::<A>(&app).await.value();
    for cut in (0..value.len()).step_by(3) {
        assert_eq!(
            read_with::<A>(&app, &value[..cut]).await.0,
            "0",
            "cut at {cut}"
        );
    }
    let bytes = URL_SAFE_NO_PAD.decode(&value).expect("base64url");
    let padded = format!("{value}==");
    for other in [STANDARD.encode(&bytes), padded, format!("{value}%3D")] {
        if other == value {
            continue;
        }
        assert_eq!(read_with::<A>(&app, &other).await.0, "0", "{other}");
    }
}

/// Two users' cookies spliced into one, or a cookie sealed for another
/// cookie name with the same keys: a fresh session. (A whole cookie is a
/// bearer credential, like a session id: whoever presents it has the
/// session.)
pub async fn cookies_spliced_between_users_or_made_for_another_name_give_a_fresh_session<
    A: Adapter,
>() {
    let clock = ManualClock::new(T0);
    let app = app::<A>(private(&[1], &clock)).await;
    let alice = visited_three_times::<A>(&app).await.value();
    let mut bob = Browser::default();
    bob.send::<A>(&app, Req::get("/visit")).await;
    let bob = bob.value();
    assert_eq!(read_with::<A>(&app, &bob).await.0, "1");
    let half = alice.len().min(bob.len()) / 2;
    for spliced in [
        format!("{}{}", &alice[..half], &bob[half..]),
        format!("{}{}", &bob[..half], &alice[half..]),
    ] {
        assert_eq!(read_with::<A>(&app, &spliced).await.0, "0");
    }
    // The same keys under another cookie name.
    let other = manager(
        CookieStore::private(keys(&[1])),
        Config::builder()
            .key_lookup("cookie:other")
            .build()
            .expect("config"),
        &clock,
    );
    let other_app = A::build(AppSpec::new(other)).await;
    let res = A::call(&other_app, Req::get("/visit")).await;
    let foreign = res
        .set_cookie("other")
        .expect("a cookie")
        .value()
        .to_owned();
    assert_eq!(read_with::<A>(&app, &foreign).await.0, "0");
}

/// Over HTTP: cookies sealed under the old key keep working once a new
/// key is primary and come back sealed under it; once the old key is
/// removed, cookies still under it open to nothing and the re-sealed ones
/// keep working.
pub async fn key_rotation_keeps_old_cookies_and_re_seals_them_until_the_key_is_removed<
    A: Adapter,
>() {
    let clock = ManualClock::new(T0);
    for protect in [CookieStore::private, CookieStore::signed] {
        let before = app::<A>(manager(protect(keys(&[1])), Config::default(), &clock)).await;
        let mut browser = visited_three_times::<A>(&before).await;
        let old = browser.value();
        let untouched = old.clone();
        // The new key first, the old one kept as a fallback.
        let rotated = app::<A>(manager(protect(keys(&[2, 1])), Config::default(), &clock)).await;
        let res = browser.send::<A>(&rotated, Req::get("/read")).await;
        assert_eq!(res.body, "3");
        let resealed = browser.value();
        assert_ne!(
            resealed, old,
            "a read under a fallback key re-seals the cookie"
        );
        // The old key removed.
        let after = app::<A>(manager(protect(keys(&[2])), Config::default(), &clock)).await;
        assert_eq!(
            read_with::<A>(&after, &untouched).await,
            ("0".to_owned(), true)
        );
        assert_eq!(
            read_with::<A>(&after, &resealed).await,
            ("3".to_owned(), false)
        );
        assert_eq!(
            browser.send::<A>(&after, Req::get("/visit")).await.body,
            "4"
        );
    }
}

/// A cookie far over any real one is read as no session, not an error.
pub async fn an_oversized_cookie_is_ignored<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let app = app::<A>(private(&[1], &clock)).await;
    let huge = "A".repeat(16 * 1024);
    assert_eq!(read_with::<A>(&app, &huge).await.0, "0");
}

/// A change that would make the cookie longer than a browser keeps fails
/// the request (500), sends no cookie, and the client's previous cookie
/// still holds the session as it was.
pub async fn a_session_too_large_for_a_cookie_fails_the_commit_and_sends_nothing<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let manager = private(&[1], &clock);
    let app = A::build(AppSpec::with(
        manager,
        Layout::Gateway(HeaderMapping::from_derive()),
    ))
    .await;
    let mut browser = Browser::default();
    assert_eq!(
        browser.send::<A>(&app, Req::post("/name/Ada")).await.status,
        200
    );
    let before = browser.value();
    let long = "x".repeat(3_500);
    let res = browser
        .send::<A>(&app, Req::post(&format!("/name/{long}")))
        .await;
    assert_eq!(res.status, 500);
    assert!(res.set_cookie(COOKIE).is_none());
    assert_eq!(browser.value(), before);
    let echo = browser.send::<A>(&app, Req::get("/dashboard")).await;
    assert!(echo.body.contains("x-user-name: Ada"), "{}", echo.body);
    // Just under the limit is fine.
    let fits = "y".repeat(2_000);
    assert_eq!(
        browser
            .send::<A>(&app, Req::post(&format!("/name/{fits}")))
            .await
            .status,
        200
    );
    assert!(browser.value().len() < CookieStore::MAX_COOKIE_BYTES);
}

/// The idle timeout is checked from the metadata sealed in the cookie: a
/// copy replayed after it opens to nothing, while a client that keeps
/// using the session (and so gets refreshed cookies) keeps it.
pub async fn a_replayed_cookie_past_its_idle_timeout_opens_to_nothing<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(600))
        .touch_after(Duration::ZERO)
        .build()
        .expect("config");
    let app = app::<A>(manager(CookieStore::private(keys(&[1])), config, &clock)).await;
    let mut browser = visited_three_times::<A>(&app).await;
    let copy = browser.value();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(400));
        assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "3");
    }
    // 1,200 s after the copy was made, 400 s after the last use.
    assert_eq!(read_with::<A>(&app, &copy).await, ("0".to_owned(), true));
    assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "3");
    clock.advance(Duration::from_secs(600));
    assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "0");
}

/// The absolute deadline is sealed too: no refresh carries a session past it.
pub async fn a_replayed_cookie_past_its_absolute_timeout_opens_to_nothing<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(600))
        .absolute_timeout(Duration::from_secs(1_000))
        .touch_after(Duration::ZERO)
        .build()
        .expect("config");
    let app = app::<A>(manager(CookieStore::private(keys(&[1])), config, &clock)).await;
    let mut browser = visited_three_times::<A>(&app).await;
    clock.advance(Duration::from_secs(500));
    assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "3");
    clock.advance(Duration::from_secs(499));
    assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "3");
    clock.advance(Duration::from_secs(1));
    assert_eq!(browser.send::<A>(&app, Req::get("/read")).await.body, "0");
}

/// The documented limit of a cookie store: logout clears the cookie of the
/// browser that logged out, but a copy taken before still opens until its
/// idle timeout (the bound), and never after.
pub async fn a_replayed_cookie_after_logout_still_opens_until_its_idle_timeout<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(600))
        .build()
        .expect("config");
    let app = app::<A>(manager(CookieStore::private(keys(&[1])), config, &clock)).await;
    let mut browser = Browser::default();
    assert_eq!(
        browser.send::<A>(&app, Req::post("/login")).await.status,
        200
    );
    let copy = browser.value();
    let res = browser.send::<A>(&app, Req::post("/destroy")).await;
    assert_eq!(res.body, "destroyed");
    assert!(
        browser.cookie.is_none(),
        "the logging-out browser's cookie is cleared"
    );
    let all = |value: &str| Req::get("/all").cookie(COOKIE, value);
    assert_eq!(
        A::call(&app, all(&copy)).await.body,
        "0,1,",
        "the copy still opens"
    );
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        A::call(&app, all(&copy)).await.body,
        "0,0,",
        "not past its idle timeout"
    );
}

/// Two requests of one session at once: each answers from the cookie it
/// was sent and carries its own result; the browser keeps the last
/// `Set-Cookie`, so one of the two increments is lost (a server store keeps
/// both: see the concurrency conformance cases).
pub async fn concurrent_requests_do_not_merge_the_last_response_wins<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let app = app::<A>(private(&[1], &clock)).await;
    let browser = visited_three_times::<A>(&app).await;
    let (a, b) = futures_util::future::join(
        A::call(&app, browser.with_cookie(Req::get("/visit"))),
        A::call(&app, browser.with_cookie(Req::get("/visit"))),
    )
    .await;
    assert_eq!((a.body.as_str(), b.body.as_str()), ("4", "4"));
    for res in [&a, &b] {
        let value = res.set_cookie(COOKIE).expect("a cookie").value().to_owned();
        assert_eq!(read_with::<A>(&app, &value).await.0, "4");
    }
}

/// Signing in rotates the session: a CSRF token from before is refused
/// after it, and the new page's token passes.
pub async fn csrf_a_token_from_before_sign_in_is_refused_after_it<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let manager = SessionManager::cookie_builder(CookieStore::private(keys(&[1])))
        .clock(clock.clone())
        .csrf(Csrf::default())
        .build()
        .expect("manager");
    let app = app::<A>(manager).await;
    let mut browser = Browser::default();
    let before = browser.send::<A>(&app, Req::get("/token")).await.body;
    let form = |token: &str| Req::post("/form").form(&format!("item=a&csrf_token={token}"));
    assert_eq!(browser.send::<A>(&app, form(&before)).await.status, 200);
    assert_eq!(
        browser
            .send::<A>(&app, Req::post("/login").header("x-csrf-token", &before))
            .await
            .status,
        200
    );
    assert_eq!(browser.send::<A>(&app, form(&before)).await.status, 403);
    let after = browser.send::<A>(&app, Req::get("/token")).await.body;
    assert_eq!(browser.send::<A>(&app, form(&after)).await.status, 200);
}

/// A flash message is shown once to a client that keeps the latest cookie
/// (a copy of the cookie from before it was shown still holds it: the
/// cookie store cannot consume what a copy carries).
pub async fn flash_shows_once_to_the_latest_cookie<A: Adapter>() {
    let clock = ManualClock::new(T0);
    let app = app::<A>(private(&[1], &clock)).await;
    let mut browser = Browser::default();
    assert_eq!(
        browser.send::<A>(&app, Req::post("/flash")).await.status,
        200
    );
    let copy = browser.value();
    assert_eq!(
        browser.send::<A>(&app, Req::get("/notice")).await.body,
        "saved"
    );
    assert_eq!(
        browser.send::<A>(&app, Req::get("/notice")).await.body,
        "none"
    );
    let replayed = A::call(&app, Req::get("/notice").cookie(COOKIE, &copy)).await;
    assert_eq!(replayed.body, "saved");
}

/// `maxSessionsPerUser`, signed ids and an id source without a cookie need
/// a server store: refused when the manager is built, saying why.
pub async fn what_needs_a_server_store_is_refused_when_the_manager_is_built<A: Adapter>() {
    let build = |config: Config, signed: bool| {
        let mut builder =
            SessionManager::<User>::cookie_builder(CookieStore::private(keys(&[1]))).config(config);
        if signed {
            builder = builder.signed_ids(sessionkit::SignedIds::new(keys(&[1])));
        }
        builder.build().map(drop)
    };
    let capped = Config::builder()
        .max_sessions_per_user(3)
        .build()
        .expect("config");
    let header = Config::builder()
        .key_lookup("header:X-Session")
        .build()
        .expect("config");
    for (config, signed, says) in [
        (capped, false, "maxSessionsPerUser"),
        (Config::default(), true, "signed ids"),
        (header, false, "cookie"),
    ] {
        match build(config, signed) {
            Err(error @ ConfigError::CookieStore { .. }) => {
                assert!(error.to_string().contains(says), "{error}");
            }
            other => panic!("expected a cookie store error, got {other:?}"),
        }
    }
}

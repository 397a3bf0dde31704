//! The web app example: a small server-rendered shop on sessionkit-actix,
//! plain HTML forms with CSRF tokens, one-time notices from a flash field,
//! and a small stylesheet, for people (and the browser tests) to use.
//!
//! `cargo run --example webapp` runs [`run_from_env`] on
//! <http://127.0.0.1:8080>. Sign in as `alice` / `wonderland` or
//! `bob` / `builder`.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | home: who is signed in, the cart's size, the sign-in form |
//! | `GET /login`, `POST /login` | sign in (`username`, `password`, `remember=on`); a new session id; `303` to `/`, or `401` with the form again |
//! | `POST /logout` | sign out: the session is deleted, the cookie removed; `303` to `/` |
//! | `GET /cart`, `POST /cart/add`, `POST /cart/remove` | the cart (`product`), kept across sign-in; adds and removes are `303` to `/cart` |
//! | `GET /devices` | signed in: the user's sessions ("your devices"), each with a revoke button; signed out: `303` to `/login` |
//! | `POST /devices/revoke` (`handle`), `POST /devices/sign-out-others`, `POST /devices/sign-out-everywhere` | sessions per user; `303` to `/devices` (to `/` after signing out everywhere) |
//! | `GET /parallel` | a page whose script fires 8 `fetch()` calls at once to `POST /api/ping` (token in `X-CSRF-Token`) |
//! | `GET /parallel.js`, `GET /style.css` | the page script and the stylesheet, `Cache-Control: public, max-age=300` |
//! | `POST /api/ping` | counts a ping in the session: `{"user", "pings"}` |
//! | `GET /api/me` | `{"user", "device", "remember", "cart", "pings"}` |
//!
//! # Decisions
//!
//! - **The cookie.** `webapp_session`, `HttpOnly`, `SameSite=Lax`, `Path=/`,
//!   and a browser-session cookie (`cookieSessionOnly`): a plain sign-in ends
//!   when the browser closes. "Remember me" gives the session a 30-day idle
//!   timeout, and a session whose idle timeout is longer than
//!   `cookieExpiration` gets a persistent cookie (`Max-Age` = 30 days,
//!   re-sent as it is used). Not `Secure` by default, so the example works on
//!   plain `http://`; set `cookieSecure: true` in the config file behind TLS.
//! - **Sign-in** rotates the session id (a planted pre-login id is worth
//!   nothing) and keeps the cart. Sign-out deletes the session.
//! - **CSRF: a token in every form.** The manager has sessionkit's
//!   [`Csrf`] ([`csrf`]), so the session middleware refuses (`403`, a page
//!   saying why) every `POST` without the session's token: each form has it
//!   in a hidden `csrf_token` field (the navigation's sign-out form too),
//!   and every page has it in `<meta name="csrf-token">`, which
//!   `parallel.js` sends as `X-CSRF-Token`. Tokens are masked per page and
//!   stay valid until the next sign-in or sign-out. With `curl`, read the
//!   token from a page first. Because the sign-in form needs a token, the
//!   home and sign-in pages start an anonymous session (and set its cookie).
//! - **Cross-site forms are refused first** (`403`) by the Fetch-metadata /
//!   `Origin` check of [`page::cross_site`], kept in front of the token
//!   check as defence in depth, on top of `SameSite=Lax`.
//! - **Notices are flash messages**: `notice` is a `#[session(flash)]` field,
//!   set after sign-in, sign-out, cart changes and device revocation, and
//!   taken by the next page rendered (`take_notice().await` in every page's
//!   frame): shown once, and in only one tab when two load at once. API
//!   answers never take it.
//! - **Every page and API answer is `Cache-Control: no-store`** (signed-in
//!   pages such as `/devices` and `/api/me` included, whether or not they
//!   send a cookie); only the static script and stylesheet may be cached.
//!   Pages cannot be framed, and the CSP (`default-src 'self'`) allows no
//!   inline script or style: layout is by class, in `/style.css`.
//! - **A plain sign-in forgets "remember me"**: the session goes back to the
//!   configured idle timeout and a browser-session cookie, even on a browser
//!   that was remembered before.
//! - **At most 10 sessions per user** (`maxSessionsPerUser`): signing in on
//!   an 11th device signs out the least recently used one.
//! - **Passwords** are compared in constant time against a fixed demo table;
//!   a real app checks a password hash.

pub mod page;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{from_fn, DefaultHeaders, Next};
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sessionkit::store::{DynSessionStore, StoreError};
use sessionkit::{
    Config, ConfigError, Csrf, CsrfRejection, ErrorChain, SameSite, SessionData, SessionError,
    SessionHandle, SessionManager, SessionManagerBuilder,
};
use sessionkit_actix::{Session, SessionMiddleware};

use crate::gateway::GatewayError;

/// The web app's session. `user` is the principal: a user's sessions are
/// listed on "your devices" and can be revoked there.
#[derive(SessionData, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    /// The signed-in user.
    #[session(principal)]
    pub user: Option<String>,
    /// "Chrome on Linux": [`page::device_label`] of the browser that signed in.
    pub device: String,
    /// Whether the user asked to be remembered (30-day idle timeout).
    pub remember: bool,
    /// Product → quantity.
    pub cart: BTreeMap<String, u32>,
    /// `POST /api/ping` calls. (A ping's answer is the count its request
    /// computed; when pings race, the store keeps every one of them, and
    /// `GET /api/me` shows the total.)
    pub pings: u64,
    /// A one-time message for the next page ("Signed in as alice."): set
    /// with `flash_notice`, taken (shown once) by the next page rendered.
    #[session(flash)]
    pub notice: Option<String>,
}

/// The products the cart offers.
pub const PRODUCTS: [&str; 4] = ["apple", "pear", "fig", "quince"];

/// The demo accounts: user, password.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// The idle timeout of a remembered session.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The session cookie's name.
pub const COOKIE: &str = "webapp_session";

/// The example's default configuration (see the module's decisions): idle
/// timeout 30 minutes, id renewed every 15, browser-session cookie, at most
/// 10 sessions per user.
#[must_use]
pub fn default_config() -> Config {
    Config::builder()
        .key_lookup(format!("cookie:{COOKIE}"))
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_session_only(true)
        .idle_timeout(Duration::from_secs(30 * 60))
        .auto_renew_after(Duration::from_secs(15 * 60))
        .max_sessions_per_user(10)
        .build()
        // The literal config above is valid; fall back to the defaults if not.
        .unwrap_or_default()
}

/// The largest form the app accepts (and the CSRF check buffers).
const FORM_LIMIT: usize = 16 * 1024;

/// The web app's CSRF protection: sessionkit's defaults (token in the
/// `csrf_token` form field or the `X-CSRF-Token` header, Fetch Metadata /
/// `Origin` checked first), no exempt route.
pub fn csrf() -> Csrf {
    Csrf::default()
}

/// Everything the app needs; cheap to clone into every worker.
#[derive(Clone, Debug)]
pub struct Webapp {
    session: SessionMiddleware<WebSession>,
}

impl Webapp {
    /// The app over the manager `builder` makes, with [`csrf`] turned on
    /// (tests pass a builder with their own clock and store).
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    pub fn new(builder: SessionManagerBuilder<WebSession>) -> Result<Self, ConfigError> {
        let manager = builder.csrf(csrf()).build()?;
        let session = SessionMiddleware::builder(manager)
            .form_limit(FORM_LIMIT)
            .csrf_rejection_handler(csrf_refused)
            .build();
        Ok(Self { session })
    }

    /// The app with `config` over `store`.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    pub fn with_store(
        config: Config,
        store: Arc<dyn DynSessionStore>,
    ) -> Result<Self, ConfigError> {
        Self::new(SessionManager::builder(store).config(config))
    }
}

/// The web app. Call it inside `HttpServer::new`, or give it to
/// `actix_web::test::init_service`.
pub fn webapp_app(
    app: Webapp,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(
            web::FormConfig::default()
                .limit(FORM_LIMIT)
                .error_handler(|error, _req| {
                    let body = page::layout(
                        "Bad request",
                        &page::Frame::default(),
                        "<p>The form was incomplete or too large. <a href=\"/\">Back home</a></p>",
                    );
                    let res = html(StatusCode::BAD_REQUEST, body);
                    actix_web::error::InternalError::from_response(error, res).into()
                }),
        )
        .wrap(app.session)
        .wrap(from_fn(refuse_cross_site))
        .wrap(
            DefaultHeaders::new()
                // Every page and API answer is per-user: never cached.
                // sessionkit-actix also sets it whenever it sends a cookie.
                .add((header::CACHE_CONTROL, "no-store"))
                .add((header::X_FRAME_OPTIONS, "DENY"))
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
                ))
                .add((header::REFERRER_POLICY, "same-origin")),
        )
        .route("/", web::get().to(home))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/cart", web::get().to(cart))
        .route("/cart/add", web::post().to(cart_add))
        .route("/cart/remove", web::post().to(cart_remove))
        .route("/devices", web::get().to(devices))
        .route("/devices/revoke", web::post().to(revoke))
        .route("/devices/sign-out-others", web::post().to(sign_out_others))
        .route(
            "/devices/sign-out-everywhere",
            web::post().to(sign_out_everywhere),
        )
        .route("/parallel", web::get().to(parallel))
        .route("/parallel.js", web::get().to(parallel_js))
        .route("/style.css", web::get().to(style_css))
        .route("/api/ping", web::post().to(ping))
        .route("/api/me", web::get().to(me))
}

/// `403` for a state-changing request another site made the browser send.
async fn refuse_cross_site(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let text = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let refused = page::cross_site(
            text(header::HeaderName::from_static("sec-fetch-site")),
            text(header::ORIGIN),
            text(header::HOST),
        );
        if refused {
            let res = html(
                StatusCode::FORBIDDEN,
                page::layout(
                    "Forbidden",
                    &page::Frame::default(),
                    "<p>This form was sent from another site.</p>",
                ),
            );
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The answer to a request sessionkit's CSRF check refused (no token, or
/// not this session's): `403` with the reason, as a page.
fn csrf_refused(rejection: &CsrfRejection, _req: &HttpRequest) -> HttpResponse {
    let body = format!(
        "<p id=\"refused\">{}</p><p><a href=\"/\">Back home</a></p>",
        page::escape(&rejection.to_string())
    );
    html(
        StatusCode::FORBIDDEN,
        page::layout("Forbidden", &page::Frame::default(), &body),
    )
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(body)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A store failure: logged with its causes (never the session's values),
/// answered `503`.
fn unavailable(error: &sessionkit::SessionError) -> HttpResponse {
    tracing::error!(error = %ErrorChain(error), "webapp: the session store failed");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::layout(
            "Unavailable",
            &page::Frame::default(),
            "<p>Sessions are unavailable. Try again in a moment.</p>",
        ),
    )
}

/// The frame of a page for `session`: its user, its notice (taken now, so
/// it shows on this page only, and on no other tab's), and a CSRF token for
/// its forms and scripts. Awaited by every page before it renders.
async fn frame(session: &Session<WebSession>) -> Result<page::Frame, SessionError> {
    let notice = session.take_notice().await?;
    Ok(page::Frame {
        user: session.user(),
        notice,
        csrf_token: Some(session.csrf_token()?),
    })
}

/// The page `title` for `session`, `body` made with its frame's CSRF token.
async fn render(
    session: &Session<WebSession>,
    status: StatusCode,
    title: &str,
    body: impl FnOnce(&str) -> String,
) -> HttpResponse {
    match frame(session).await {
        Ok(frame) => {
            let body = body(frame.csrf_token.as_deref().unwrap_or_default());
            html(status, page::layout(title, &frame, &body))
        }
        Err(error) => unavailable(&error),
    }
}

async fn home(session: Session<WebSession>) -> HttpResponse {
    let items: u32 = session.with_cart(|cart| cart.values().sum());
    let user = session.user();
    render(&session, StatusCode::OK, "Home", |token| match user {
        Some(user) => format!(
            "<p id=\"welcome\">Welcome back, {}.</p><p>Your cart holds <span id=\"cart-count\">{items}</span> item(s).</p>",
            page::escape(&user)
        ),
        None => format!(
            "<p>Your cart holds <span id=\"cart-count\">{items}</span> item(s).</p>{}",
            page::login_form(token, None)
        ),
    })
    .await
}

async fn login_page(session: Session<WebSession>) -> HttpResponse {
    render(&session, StatusCode::OK, "Sign in", |token| {
        page::login_form(token, None)
    })
    .await
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    remember: Option<String>,
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn password_ok(user: &str, password: &str) -> bool {
    USERS
        .iter()
        .any(|(u, p)| same_secret(u, user) & same_secret(p, password))
}

async fn login(
    session: Session<WebSession>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !password_ok(&form.username, &form.password) {
        return render(&session, StatusCode::UNAUTHORIZED, "Sign in", |token| {
            page::login_form(token, Some("Wrong user name or password."))
        })
        .await;
    }
    // A new id at sign-in: a pre-login id (maybe planted) is worthless now.
    if let Err(error) = session.regenerate() {
        return unavailable(&error);
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let remember = form.remember.as_deref() == Some("on");
    session.set_user(Some(form.username.clone()));
    session.set_device(page::device_label(user_agent));
    session.set_remember(remember);
    if remember {
        session.set_idle_timeout(REMEMBER_FOR);
    } else {
        // A browser remembered at an earlier sign-in is not remembered now.
        session.use_configured_idle_timeout();
    }
    session.flash_notice(format!("Signed in as {}.", form.username));
    see_other("/")
}

async fn logout(session: Session<WebSession>) -> HttpResponse {
    session.destroy();
    // A new, anonymous session carries the notice to the next page.
    session.flash_notice("Signed out.".to_owned());
    see_other("/")
}

async fn cart(session: Session<WebSession>) -> HttpResponse {
    let cart = session.cart();
    render(&session, StatusCode::OK, "Your cart", |token| {
        let field = page::token_field(token);
        let mut body = String::from(
            "<table id=\"cart\"><tr><th>Product</th><th>Quantity</th><th></th></tr>",
        );
        for (product, quantity) in &cart {
            let product = page::escape(product);
            body.push_str(&format!(
                "<tr data-product=\"{product}\"><td>{product}</td><td class=\"quantity\">{quantity}</td><td>\
                 <form method=\"post\" action=\"/cart/remove\">{field}<input type=\"hidden\" name=\"product\" value=\"{product}\">\
                 <button class=\"secondary\" type=\"submit\">Remove one</button></form></td></tr>"
            ));
        }
        body.push_str(&format!(
            "</table><form id=\"add\" method=\"post\" action=\"/cart/add\">{field}<select id=\"product\" name=\"product\">"
        ));
        for product in PRODUCTS {
            body.push_str(&format!("<option value=\"{product}\">{product}</option>"));
        }
        body.push_str(
            "</select> <button id=\"add-button\" type=\"submit\">Add to cart</button></form>",
        );
        body
    })
    .await
}

#[derive(Deserialize)]
struct ProductForm {
    product: String,
}

async fn cart_add(session: Session<WebSession>, form: web::Form<ProductForm>) -> HttpResponse {
    let product = form.into_inner().product;
    if !PRODUCTS.contains(&product.as_str()) {
        let body = "<p>No such product.</p><p><a href=\"/cart\">Back to the cart</a></p>";
        return render(&session, StatusCode::BAD_REQUEST, "Unknown product", |_| {
            body.to_owned()
        })
        .await;
    }
    session.flash_notice(format!("Added one {product} to your cart."));
    // A closure, so concurrent adds from two tabs are both kept (it may run
    // again on a fresher cart at commit).
    session.update_cart(move |cart| {
        *cart.entry(product.clone()).or_insert(0) += 1;
    });
    see_other("/cart")
}

async fn cart_remove(session: Session<WebSession>, form: web::Form<ProductForm>) -> HttpResponse {
    let product = form.into_inner().product;
    if session.with_cart(|cart| cart.contains_key(&product)) {
        session.flash_notice(format!("Removed one {product} from your cart."));
    }
    session.update_cart(move |cart| {
        if let Some(quantity) = cart.get_mut(&product) {
            *quantity -= 1;
            if *quantity == 0 {
                cart.remove(&product);
            }
        }
    });
    see_other("/cart")
}

async fn devices(session: Session<WebSession>) -> HttpResponse {
    let Some(user) = session.user() else {
        return see_other("/login");
    };
    let list = match session
        .manager()
        .list_sessions(&user, Some(&session.id()))
        .await
    {
        Ok(list) => list,
        Err(SessionError::Store(StoreError::Unsupported(_))) => return no_devices(&session).await,
        Err(error) => return unavailable(&error),
    };
    render(&session, StatusCode::OK, "Your devices", |token| {
        let field = page::token_field(token);
        let mut body = format!(
            "<p>You are signed in on <span id=\"device-count\">{}</span> device(s).</p>\
             <table id=\"devices\"><tr><th>Device</th><th>Signed in</th><th>Last active</th><th></th></tr>",
            list.len()
        );
        for info in &list {
            let action = if info.current {
                "<b class=\"current\">this device</b>".to_owned()
            } else {
                format!(
                    "<form method=\"post\" action=\"/devices/revoke\">{field}<input type=\"hidden\" name=\"handle\" value=\"{}\">\
                     <button class=\"revoke secondary\" type=\"submit\">Sign out this device</button></form>",
                    info.handle.as_str()
                )
            };
            body.push_str(&format!(
                "<tr class=\"device{}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                if info.current { " current" } else { "" },
                page::escape(&info.data.device),
                if info.data.remember {
                    " (remembered)"
                } else {
                    ""
                },
                page::utc(info.created_at),
                page::utc(info.last_access),
            ));
        }
        body.push_str(&format!(
            "</table><div class=\"actions\"><form method=\"post\" action=\"/devices/sign-out-others\">{field}\
             <button id=\"sign-out-others\" type=\"submit\">Sign out all other devices</button></form>\
             <form method=\"post\" action=\"/devices/sign-out-everywhere\">{field}\
             <button id=\"sign-out-everywhere\" type=\"submit\">Sign out everywhere</button></form></div>"
        ));
        body
    })
    .await
}

/// "Your devices" on a store that keeps no sessions on the server (the
/// cookie store): there is nothing to list or sign out.
async fn no_devices(session: &Session<WebSession>) -> HttpResponse {
    render(session, StatusCode::OK, "Your devices", |_| {
        "<p id=\"no-devices\">This app keeps your session in your browser's cookie \
         (<code>SESSION_STORE=cookie</code>), not on the server, so it cannot list your devices \
         or sign them out. Signing out ends the session in this browser; a copy of its cookie \
         taken before stays valid until it has been unused for the idle timeout.</p>"
            .to_owned()
    })
    .await
}

/// Where a revoke form lands on a store that cannot revoke.
fn cannot_revoke(session: &Session<WebSession>) -> HttpResponse {
    session.flash_notice(
        "This store keeps sessions in the browser's cookie: other devices cannot be signed out."
            .to_owned(),
    );
    see_other("/devices")
}

#[derive(Deserialize)]
struct RevokeForm {
    handle: String,
}

async fn revoke(session: Session<WebSession>, form: web::Form<RevokeForm>) -> HttpResponse {
    let Some(user) = session.user() else {
        return see_other("/login");
    };
    let notice = match SessionHandle::parse(&form.handle) {
        Err(_) => "That device is not signed in.",
        Ok(handle) => match session.manager().revoke_session(&user, &handle).await {
            Ok(true) => "Signed out that device.",
            Ok(false) => "That device is not signed in.",
            Err(SessionError::Store(StoreError::Unsupported(_))) => return cannot_revoke(&session),
            Err(error) => return unavailable(&error),
        },
    };
    session.flash_notice(notice.to_owned());
    see_other("/devices")
}

async fn sign_out_others(session: Session<WebSession>) -> HttpResponse {
    let Some(user) = session.user() else {
        return see_other("/login");
    };
    match session
        .manager()
        .revoke_other_sessions(&user, &session.id())
        .await
    {
        Ok(n) => {
            session.flash_notice(format!("Signed out {n} other device(s)."));
            see_other("/devices")
        }
        Err(SessionError::Store(StoreError::Unsupported(_))) => cannot_revoke(&session),
        Err(error) => unavailable(&error),
    }
}

async fn sign_out_everywhere(session: Session<WebSession>) -> HttpResponse {
    let Some(user) = session.user() else {
        return see_other("/login");
    };
    match session.manager().revoke_all_sessions(&user).await {
        Ok(n) => {
            session.destroy();
            session.flash_notice(format!("Signed out everywhere ({n} device(s))."));
            see_other("/")
        }
        Err(SessionError::Store(StoreError::Unsupported(_))) => cannot_revoke(&session),
        Err(error) => unavailable(&error),
    }
}

async fn parallel(session: Session<WebSession>) -> HttpResponse {
    let body = "<p>This page sends 8 requests at once, each counting a ping in your session.</p>\
                <p>Status: <span id=\"status\">running</span></p><ol id=\"results\"></ol>\
                <script src=\"/parallel.js\"></script>";
    render(&session, StatusCode::OK, "Parallel requests", |_| {
        body.to_owned()
    })
    .await
}

/// The script of `/parallel` (served as a file: the page's CSP allows no
/// inline script). Its `POST`s carry the page's CSRF token (from the
/// `csrf-token` meta tag) in the `X-CSRF-Token` header.
const PARALLEL_JS: &str = r#"(async () => {
  const status = document.getElementById('status');
  const list = document.getElementById('results');
  const token = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  try {
    const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const res = await fetch('/api/ping', {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'X-CSRF-Token': token },
      });
      return { i, status: res.status, body: await res.json() };
    }));
    for (const a of answers) {
      const item = document.createElement('li');
      item.className = 'result';
      item.dataset.status = String(a.status);
      item.dataset.user = a.body.user ?? '';
      item.textContent = `request ${a.i + 1}: ${a.status}, user ${a.body.user ?? '(nobody)'}, ping ${a.body.pings}`;
      list.appendChild(item);
    }
    status.textContent = 'done';
  } catch (e) {
    status.textContent = 'failed: ' + e;
  }
})();
"#;

async fn parallel_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        // The same for everyone: a cache may keep it for a while.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(PARALLEL_JS)
}

async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        // Like the script: the same for everyone, cacheable for a while.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(page::STYLE_CSS)
}

async fn ping(session: Session<WebSession>) -> HttpResponse {
    let pings = session.update_pings(|p| {
        *p += 1;
        *p
    });
    HttpResponse::Ok().json(json!({ "user": session.user(), "pings": pings }))
}

async fn me(session: Session<WebSession>) -> HttpResponse {
    session.read(|s| {
        HttpResponse::Ok().json(json!({
            "user": s.user,
            "device": s.device,
            "remember": s.remember,
            "cart": s.cart,
            "pings": s.pings,
        }))
    })
}

/// Runs the web app on `127.0.0.1:$PORT` (8080) with the sessionkit config
/// in the YAML file `SESSIONKIT_CONFIG` names (the keys of
/// [`sessionkit::Config`]) (else
/// [`default_config`]) and the store `REDIS_URL` or `DATABASE_URL` names
/// (else in memory; both is an error).
///
/// # Errors
/// [`GatewayError`] when the configuration is refused or the port cannot be bound.
pub async fn run_from_env() -> Result<(), GatewayError> {
    let port = crate::port_from_env("PORT", 8080)?;
    let config = match crate::config_file_from_env()? {
        Some(yaml) => {
            let config: Config = serde_norway::from_str(&yaml)?;
            config.validate()?;
            config
        }
        None => default_config(),
    };
    let keys = crate::keys::SessionKeys::from_env()?;
    let backend = crate::backend::backend_from_env(keys.as_ref()).await?;
    let app = Webapp::new(crate::backend::builder(keys.as_ref(), &backend, config)?)?;
    let server = HttpServer::new(move || webapp_app(app.clone()))
        .workers(2)
        .bind(("127.0.0.1", port))?
        .run();
    tracing::info!("webapp on http://127.0.0.1:{port} (alice / wonderland, bob / builder)");
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_per_user() {
        assert!(password_ok("alice", "wonderland"));
        assert!(password_ok("bob", "builder"));
        assert!(!password_ok("alice", "builder"));
        assert!(!password_ok("alice", "wonderlan"));
        assert!(!password_ok("", ""));
    }

    #[test]
    fn the_default_config_is_valid_and_session_only() {
        let config = default_config();
        assert!(config.validate().is_ok());
        assert!(config.cookie_session_only && config.cookie_http_only);
        assert_eq!(config.max_sessions_per_user, Some(10));
        assert_eq!(config.key_lookup.to_string(), "cookie:webapp_session");
    }
}

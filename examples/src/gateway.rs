//! The gateway example: the two middlewares of the gateway session plugin
//! (`LoadSessionMiddleware`, `MapSessionToHeaderMiddleware`) in front of a
//! downstream "dashboard service", plus the Fiber e-commerce routes.
//!
//! `cargo run --example gateway` runs [`run_from_env`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, Error, HttpRequest, HttpResponse, HttpServer, ResponseError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sessionkit::breaker::CircuitBreaker;
use sessionkit::store::{DynSessionStore, SessionStore};
use sessionkit::{
    Config, ConfigError, FailurePolicy, HeaderMapConfig, HeaderMapError, MemoryStore,
    PostgresConfigError, PostgresStore, RedisConfigError, RedisStore, SameSite, SessionData,
    SessionManager,
};
use sessionkit_actix::{MapSessionToHeader, Session, SessionExt, SessionMiddleware};
use tracing::Instrument;

/// The gateway's session: `user_id` and `authorization` are forwarded to
/// downstream services as `X-User-Id` and `Authorization`; `user_id` is the
/// session's principal, so a user's sessions can be listed and revoked
/// (`/sessions`, `/logout-others`, `/logout-everywhere`).
#[derive(SessionData, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySession {
    /// The logged-in user.
    #[header("X-User-Id")]
    #[session(principal)]
    pub user_id: Option<u64>,
    /// The credential downstream services expect.
    #[header("Authorization")]
    pub authorization: Option<String>,
    /// Whether the user logged in.
    pub authenticated: bool,
    /// Item ids added to the cart (kept across login).
    pub cart: Vec<String>,
    /// `GET /` visits.
    pub visits: u32,
    /// `GET /api/data` calls.
    pub api_calls: u32,
}

/// Why the gateway cannot start.
///
/// Each variant names where the problem is and gives the cause as its
/// `source`, never both (print it with [`sessionkit::ErrorChain`]).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Reading the config file or binding a port failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The YAML does not parse or does not fit the middleware configs.
    #[error("SESSIONKIT_CONFIG")]
    Yaml(#[from] serde_norway::Error),
    /// The session configuration cannot work.
    #[error("SESSIONKIT_CONFIG: LoadSessionMiddleware")]
    Config(#[from] ConfigError),
    /// The header map names something the session does not have.
    #[error("SESSIONKIT_CONFIG: MapSessionToHeaderMiddleware")]
    Headers(#[from] HeaderMapError),
    /// `REDIS_URL` does not describe a usable Redis (or Cluster).
    #[error("REDIS_URL")]
    Redis(#[from] RedisConfigError),
    /// `DATABASE_URL` does not describe a usable PostgreSQL, or its schema
    /// could not be created.
    #[error("DATABASE_URL")]
    Postgres(#[from] PostgresConfigError),
    /// `SESSION_KEYS` is malformed.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysEnvError),
    /// `SESSION_STORE` cannot be honoured.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendEnvError),
    /// Both `REDIS_URL` and `DATABASE_URL` are set: which store to use is
    /// not guessed.
    #[error("both REDIS_URL and DATABASE_URL are set; unset one of them (REDIS_URL keeps sessions in Redis, DATABASE_URL in PostgreSQL)")]
    TwoStores,
    /// The Prometheus recorder of `GET /metrics` could not be set up
    /// (the exporter's error prints its own cause, so it is kept as text).
    #[error("GET /metrics: {0}")]
    Metrics(String),
    /// A number in the environment does not parse.
    #[error("{name} must be a port number, got {value:?}")]
    Port {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// The `config:` blocks of the gateway's `middlewares.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `LoadSessionMiddleware`'s config.
    pub session: Config,
    /// `MapSessionToHeaderMiddleware`'s config (added to the struct's `#[header]`s).
    pub headers: HeaderMapConfig,
}

/// The id lookup of the example: cookie, then header, then query.
pub const KEY_LOOKUP: &str = "cookie:session_id,header:X-Session-ID,query:session_id";

impl Default for GatewayConfig {
    /// The gateway reference's example config: HttpOnly, not Secure, SameSite
    /// Lax, 2h expiration, auto-renew after 30m, with the [`KEY_LOOKUP`] chain.
    fn default() -> Self {
        let session = Config::builder()
            .key_lookup(KEY_LOOKUP)
            .cookie_http_only(true)
            .cookie_secure(false)
            .cookie_same_site(SameSite::Lax)
            .cookie_expiration(Duration::from_secs(2 * 60 * 60))
            .disable_auto_renew(false)
            .auto_renew_after(Duration::from_secs(30 * 60))
            .disable_session_forward(false)
            .build();
        Self {
            // The literal config above is valid; fall back to the defaults if not.
            session: session.unwrap_or_default(),
            headers: HeaderMapConfig::new([
                ("Authorization", "authorization"),
                ("X-User-Id", "user_id"),
            ]),
        }
    }
}

#[derive(Deserialize)]
struct MiddlewaresFile {
    middlewares: BTreeMap<String, MiddlewareEntry>,
}

#[derive(Deserialize)]
struct MiddlewareEntry {
    #[serde(rename = "use")]
    uses: String,
    #[serde(default)]
    config: Option<serde_norway::Value>,
}

impl GatewayConfig {
    /// Parses a `middlewares.yaml`: the entries whose `use:` ends in
    /// `LoadSessionMiddleware` and `MapSessionToHeaderMiddleware`. A missing
    /// entry keeps the default; a `LoadSessionMiddleware` config without
    /// `keyLookup` uses [`KEY_LOOKUP`].
    ///
    /// # Errors
    /// [`GatewayError`] for bad YAML, unknown keys or an invalid config.
    ///
    /// ```
    /// use sessionkit_examples::gateway::GatewayConfig;
    /// let yaml = r#"
    /// middlewares:
    ///   LoadSessionMiddleware:
    ///     use: plugins.session.middlewares.LoadSessionMiddleware
    ///     config:
    ///       cookieHTTPOnly: true
    ///       cookieExpiration: 1h
    ///       maxSessionsPerUser: 3
    ///   MapSessionToHeaderMiddleware:
    ///     use: plugins.session.middlewares.MapSessionToHeaderMiddleware
    ///     config:
    ///       headers:
    ///         X-User-Id: user_id
    /// "#;
    /// let config = GatewayConfig::from_yaml(yaml)?;
    /// assert_eq!(config.session.cookie_expiration.as_secs(), 3600);
    /// assert_eq!(config.session.max_sessions_per_user, Some(3));
    /// assert_eq!(config.session.key_lookup.to_string(), sessionkit_examples::gateway::KEY_LOOKUP);
    /// assert_eq!(config.headers.headers.len(), 1);
    /// # Ok::<(), sessionkit_examples::gateway::GatewayError>(())
    /// ```
    pub fn from_yaml(yaml: &str) -> Result<Self, GatewayError> {
        let file: MiddlewaresFile = serde_norway::from_str(yaml)?;
        let mut config = Self::default();
        for entry in file.middlewares.into_values() {
            let block = entry
                .config
                .unwrap_or(serde_norway::Value::Mapping(serde_norway::Mapping::new()));
            if entry.uses.ends_with("LoadSessionMiddleware") {
                let mut block = block;
                if let serde_norway::Value::Mapping(map) = &mut block {
                    let key = serde_norway::Value::String("keyLookup".to_owned());
                    if !map.contains_key(&key) {
                        map.insert(key, serde_norway::Value::String(KEY_LOOKUP.to_owned()));
                    }
                }
                let session: Config = serde_norway::from_value(block)?;
                session.validate()?;
                config.session = session;
            } else if entry.uses.ends_with("MapSessionToHeaderMiddleware") {
                config.headers = serde_norway::from_value(block)?;
            }
        }
        Ok(config)
    }
}

/// The in-memory store's bound: 128 MiB of sessions (about 550,000 typical
/// gateway sessions, or 8,000 carts of 15 KB).
pub const MEMORY_STORE_BYTES: u64 = 128 * 1024 * 1024;

/// The session store `REDIS_URL` asks for, or the in-memory store (bounded
/// by [`MEMORY_STORE_BYTES`]).
///
/// `REDIS_URL=redis://127.0.0.1:6379` uses one Redis; several URLs separated
/// by commas (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`) use Redis
/// Cluster, and `redis+sentinel://host:26379,host:26379/service` the primary
/// that Redis Sentinel names for `service` (found again after a failover). Nothing connects until the first request that needs a session.
/// Redis is wrapped in a [`CircuitBreaker`] (opens after 5 consecutive
/// failures, probes again after 1 s), so while it is down requests get their
/// answer at once instead of after Redis' timeouts.
///
/// # Errors
/// [`GatewayError::Redis`] when the URL is malformed (or `rediss://` in a
/// build without the `redis-tls` feature).
pub fn store_for(redis_url: Option<&str>) -> Result<Arc<dyn DynSessionStore>, GatewayError> {
    let Some(url) = redis_url.map(str::trim).filter(|u| !u.is_empty()) else {
        // Bounded in bytes: anonymous clients creating sessions cannot grow
        // the process past it; the sessions closest to expiry (the least
        // recently written) go first.
        return Ok(Arc::new(MemoryStore::with_max_bytes(MEMORY_STORE_BYTES)));
    };
    let store = if url.starts_with("redis+sentinel://") {
        RedisStore::from_url(url)?
    } else if url.contains(',') {
        RedisStore::cluster_builder(url.split(',').map(str::trim)).build()?
    } else {
        RedisStore::from_url(url)?
    };
    Ok(Arc::new(CircuitBreaker::new(store)))
}

/// The session store the environment asks for: PostgreSQL when
/// `database_url` (`DATABASE_URL`, e.g. `postgres://app@127.0.0.1/app`) is
/// set, else what [`store_for`] makes of `redis_url` (`REDIS_URL`).
///
/// PostgreSQL is connected at once: its tables are created or upgraded and
/// the sweeper of expired sessions starts, so a database that cannot be
/// reached is a start-up error. Like Redis, it is wrapped in a
/// [`CircuitBreaker`].
///
/// ```no_run
/// # async fn start() -> Result<(), sessionkit_examples::gateway::GatewayError> {
/// let store = sessionkit_examples::gateway::store_from_env_values(
///     None,
///     Some("postgres://postgres@127.0.0.1:5432/postgres"),
/// )
/// .await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`GatewayError::TwoStores`] when both are set; [`GatewayError::Postgres`]
/// or [`GatewayError::Redis`] when the chosen store is refused.
pub async fn store_from_env_values(
    redis_url: Option<&str>,
    database_url: Option<&str>,
) -> Result<Arc<dyn DynSessionStore>, GatewayError> {
    fn set(value: Option<&str>) -> Option<&str> {
        value.map(str::trim).filter(|u| !u.is_empty())
    }
    match (set(redis_url), set(database_url)) {
        (Some(_), Some(_)) => Err(GatewayError::TwoStores),
        (_, Some(url)) => {
            let store = PostgresStore::connect(url).await?;
            Ok(Arc::new(CircuitBreaker::new(store)))
        }
        (redis, None) => store_for(redis),
    }
}

/// [`store_from_env_values`] of `REDIS_URL` and `DATABASE_URL`.
///
/// # Errors
/// What [`store_from_env_values`] returns.
pub async fn store_from_env() -> Result<Arc<dyn DynSessionStore>, GatewayError> {
    let redis = std::env::var("REDIS_URL").ok();
    let database = std::env::var("DATABASE_URL").ok();
    store_from_env_values(redis.as_deref(), database.as_deref()).await
}

/// Says at start-up that a `storage:` named in the config is not what picks
/// the store (both gateway examples build their store from `REDIS_URL`).
pub(crate) fn note_named_storage(config: &Config) {
    if config.storage.is_some() {
        tracing::info!(
            storage = config.storage.as_deref(),
            "storage is named in the config; the store is chosen by REDIS_URL or DATABASE_URL"
        );
    }
}

/// Everything the gateway app needs; cheap to clone into every worker.
#[derive(Clone)]
pub struct Gateway {
    session: SessionMiddleware<GatewaySession>,
    /// The same manager for `/public/*`, where a store failure gives an
    /// anonymous session instead of a 503.
    public_session: SessionMiddleware<GatewaySession>,
    headers: MapSessionToHeader<GatewaySession>,
    downstream: Arc<str>,
    metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("session", &self.session)
            .field("headers", &self.headers)
            .field("downstream", &self.downstream)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Checks `config` (an unknown header-map field is an error here, at
    /// start-up) and builds the middlewares.
    ///
    /// # Errors
    /// [`GatewayError::Config`] or [`GatewayError::Headers`].
    pub fn new(
        config: &GatewayConfig,
        store: impl SessionStore,
        downstream: impl Into<String>,
    ) -> Result<Self, GatewayError> {
        let manager = SessionManager::builder(store)
            .config(config.session.clone())
            .build()?;
        Self::with_manager(manager, &config.headers, downstream)
    }

    /// As [`Gateway::new`], with a manager built by the caller (tests inject a clock).
    ///
    /// # Errors
    /// [`GatewayError::Headers`].
    pub fn with_manager(
        manager: SessionManager<GatewaySession>,
        headers: &HeaderMapConfig,
        downstream: impl Into<String>,
    ) -> Result<Self, GatewayError> {
        note_named_storage(manager.config());
        Ok(Self {
            public_session: SessionMiddleware::builder(manager.clone())
                .on_store_failure(FailurePolicy::Anonymous)
                .build(),
            session: SessionMiddleware::new(manager),
            headers: MapSessionToHeader::with_config(headers)?,
            downstream: downstream.into().trim_end_matches('/').into(),
            metrics: None,
        })
    }

    /// Serves `GET /metrics` from `handle` (Prometheus text format);
    /// without it `/metrics` is `404`.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// The Prometheus exporter of `GET /metrics`, not installed yet: `_seconds`
/// histograms with buckets from 50 µs to 5 s, `_bytes` ones from 64 B to 64 KiB.
///
/// # Errors
/// [`GatewayError::Metrics`] for invalid buckets (never with these).
pub fn prometheus() -> Result<PrometheusBuilder, GatewayError> {
    let seconds = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0,
    ];
    let bytes = [64.0, 256.0, 1024.0, 4096.0, 16_384.0, 65_536.0];
    let metrics = |e: metrics_exporter_prometheus::BuildError| GatewayError::Metrics(e.to_string());
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &bytes))
        .map_err(metrics)
}

/// Installs [`prometheus`] as the process's metrics recorder and describes
/// sessionkit's metrics; returns the handle `GET /metrics` renders.
///
/// # Errors
/// [`GatewayError::Metrics`] when a recorder is already installed.
pub fn install_prometheus() -> Result<PrometheusHandle, GatewayError> {
    let handle = prometheus()?
        .install_recorder()
        .map_err(|e| GatewayError::Metrics(e.to_string()))?;
    sessionkit::metrics::describe();
    // The exporter drains its histogram samples only when rendered or on
    // upkeep: without this, a gateway nobody scrapes grows with every
    // request (found by scripts/soak.sh).
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("prometheus-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            upkeep.run_upkeep();
        })?;
    Ok(handle)
}

struct Downstream(Arc<str>);

/// The gateway app. Call it inside `HttpServer::new` (it creates the `awc`
/// client of the worker) or give it to `actix_web::test::init_service`.
pub fn gateway_app(
    gateway: Gateway,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let forwarded = |prefix: &str| {
        web::scope(prefix)
            .route("", web::get().to(forward))
            .route("/{tail:.*}", web::get().to(forward))
    };
    App::new()
        .app_data(web::Data::new(awc::Client::default()))
        .app_data(web::Data::new(Downstream(Arc::clone(&gateway.downstream))))
        .app_data(web::Data::new(MetricsHandle(gateway.metrics.clone())))
        // Before routing: neither the session nor the login check ever sees
        // a path that could mean another route downstream.
        .wrap(from_fn(reject_dot_segments))
        // Registered last, so it runs first: one span per request.
        .wrap(from_fn(trace_requests))
        .route("/metrics", web::get().to(metrics_text))
        // Public pages stay up while the store is down: an anonymous session.
        .service(
            forwarded("/public")
                .wrap(gateway.headers.clone())
                .wrap(gateway.public_session.clone()),
        )
        .service(
            web::scope("")
                .wrap(gateway.session.clone())
                .route("/", web::get().to(index))
                .route("/cart/add", web::post().to(cart_add))
                .route("/cart", web::get().to(cart))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout))
                .route("/sessions", web::get().to(sessions))
                .route("/sessions/revoke", web::post().to(revoke_session))
                .route("/logout-others", web::post().to(logout_others))
                .route("/logout-everywhere", web::post().to(logout_everywhere))
                .route("/api/data", web::get().to(api_data))
                .service(
                    forwarded("/dashboard")
                        // Inner to outer: headers mapped, then auth checked,
                        // the session (the scope's `.wrap`) outside both.
                        .wrap(gateway.headers.clone())
                        .wrap(from_fn(require_auth)),
                ),
        )
}

struct MetricsHandle(Option<PrometheusHandle>);

/// The `Content-Type` of `GET /metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: every metric in the Prometheus text format.
async fn metrics_text(handle: web::Data<MetricsHandle>) -> HttpResponse {
    match &handle.0 {
        Some(handle) => HttpResponse::Ok()
            .content_type(METRICS_CONTENT_TYPE)
            .body(handle.render()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The span of one gateway request (both gateway examples open it the same
/// way): `request`, with the method, the path without its query, and two
/// fields filled in later: `session` (the fingerprint of the session id,
/// recorded by sessionkit when the request loads its session; never the id
/// itself) and `status` ([`request_served`]).
#[must_use]
pub fn request_span(method: &str, path: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %method,
        path = path,
        session = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// Records the response's status in `span` ([`request_span`]) and logs one
/// `info` line for the request.
pub fn request_served(span: &tracing::Span, status: u16) {
    span.record("status", status);
    tracing::info!(parent: span, "served");
}

/// One `tracing` span per request (`request`, with the method, the path
/// without its query, the status, and `session`: the fingerprint of the
/// session id sessionkit records when the request loads its session, never
/// the id itself), and one `info` line when the response is ready.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let span = request_span(req.method().as_str(), req.path());
    let res = next.call(req).instrument(span.clone()).await?;
    request_served(&span, res.status().as_u16());
    Ok(res)
}

async fn index(session: Session<GatewaySession>) -> HttpResponse {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(format!("Visits: {visits}"))
}

#[derive(Deserialize)]
struct CartForm {
    item_id: String,
}

async fn cart_add(session: Session<GatewaySession>, form: web::Form<CartForm>) -> HttpResponse {
    // A closure, so concurrent adds to one cart are all kept (it may run
    // again on a fresher cart at commit).
    let item = form.into_inner().item_id;
    let items = session.update_cart(move |cart| {
        cart.push(item.clone());
        cart.len()
    });
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn cart(session: Session<GatewaySession>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "items": session.cart() }))
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(session: Session<GatewaySession>, form: web::Form<LoginForm>) -> HttpResponse {
    if form.email != "user@example.com" || form.password != "password" {
        return HttpResponse::Unauthorized().json(json!({ "error": "Invalid credentials" }));
    }
    // A new id on login: a pre-login id (maybe planted) is worthless afterwards.
    if session.regenerate().is_err() {
        return HttpResponse::InternalServerError().json(json!({ "error": "Session error" }));
    }
    session.set_user_id(Some(1));
    session.set_authenticated(true);
    session.set_authorization(Some("Bearer demo-token-1".to_owned()));
    HttpResponse::Ok().json(json!({ "status": "logged in" }))
}

async fn logout(session: Session<GatewaySession>) -> HttpResponse {
    if session.reset().is_err() {
        return HttpResponse::InternalServerError().json(json!({ "error": "Session error" }));
    }
    HttpResponse::Ok().json(json!({ "status": "logged out" }))
}

/// Sessions per user, the logic of the gateway's routes whatever the web
/// framework: each function takes the request's session and answers an
/// HTTP status and a JSON body (`gateway_axum` uses the same functions).
///
/// Every route answers `401 {"error": "Unauthorized"}` unless the session is
/// logged in; a store failure is logged with its causes and answered `503`.
pub mod per_user {
    use serde_json::{json, Value};
    use sessionkit::{ErrorChain, Session, SessionError, SessionHandle};

    use super::{GatewaySession, GatewaySessionSessionExt};

    /// The logged-in user of this session, if any.
    fn user(session: &Session<GatewaySession>) -> Result<u64, (u16, Value)> {
        session
            .authenticated()
            .then(|| session.user_id())
            .flatten()
            .ok_or_else(|| (401, json!({ "error": "Unauthorized" })))
    }

    /// A store failure is a `503`; a store that keeps no sessions on the
    /// server (`SESSION_STORE=cookie`) answers `501` saying so.
    fn unavailable(error: &SessionError) -> (u16, Value) {
        if let SessionError::Store(sessionkit::store::StoreError::Unsupported(why)) = error {
            return (501, json!({ "error": "Not implemented", "reason": why }));
        }
        tracing::error!(error = %ErrorChain(error), "sessions per user: the store failed");
        (503, json!({ "error": "Service unavailable" }))
    }

    /// `GET /sessions`: `{"sessions": [{"handle", "current", "created_at",
    /// "last_access"}]}`, oldest first; a handle is opaque (never a session
    /// id), times are ms since the epoch.
    pub async fn list(session: &Session<GatewaySession>) -> (u16, Value) {
        let user = match user(session) {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        match session
            .manager()
            .list_sessions(&user, Some(&session.id()))
            .await
        {
            Ok(list) => {
                let sessions: Vec<Value> = list
                    .iter()
                    .map(|info| {
                        json!({
                            "handle": info.handle.as_str(),
                            "current": info.current,
                            "created_at": info.created_at,
                            "last_access": info.last_access,
                        })
                    })
                    .collect();
                (200, json!({ "sessions": sessions }))
            }
            Err(error) => unavailable(&error),
        }
    }

    /// `POST /sessions/revoke` (form `handle`): `{"revoked": true}`, or `404`
    /// when the handle names none of the user's sessions.
    pub async fn revoke(session: &Session<GatewaySession>, handle: &str) -> (u16, Value) {
        let user = match user(session) {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        let not_found = (404, json!({ "error": "Not found" }));
        let Ok(handle) = SessionHandle::parse(handle) else {
            return not_found;
        };
        match session.manager().revoke_session(&user, &handle).await {
            Ok(true) => (200, json!({ "revoked": true })),
            Ok(false) => not_found,
            Err(error) => unavailable(&error),
        }
    }

    /// `POST /logout-others`: `{"revoked": N}`, every other session of the user.
    pub async fn logout_others(session: &Session<GatewaySession>) -> (u16, Value) {
        let user = match user(session) {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        match session
            .manager()
            .revoke_other_sessions(&user, &session.id())
            .await
        {
            Ok(revoked) => (200, json!({ "revoked": revoked })),
            Err(error) => unavailable(&error),
        }
    }

    /// `POST /logout-everywhere`: `{"revoked": N}`, all of the user's
    /// sessions, this one included; its cookie is cleared.
    pub async fn logout_everywhere(session: &Session<GatewaySession>) -> (u16, Value) {
        let user = match user(session) {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        match session.manager().revoke_all_sessions(&user).await {
            Ok(revoked) => {
                session.destroy();
                (200, json!({ "revoked": revoked }))
            }
            Err(error) => unavailable(&error),
        }
    }
}

fn answer((status, body): (u16, serde_json::Value)) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(body)
}

async fn sessions(session: Session<GatewaySession>) -> HttpResponse {
    answer(per_user::list(&session).await)
}

#[derive(Deserialize)]
struct RevokeForm {
    handle: String,
}

async fn revoke_session(
    session: Session<GatewaySession>,
    form: web::Form<RevokeForm>,
) -> HttpResponse {
    answer(per_user::revoke(&session, &form.handle).await)
}

async fn logout_others(session: Session<GatewaySession>) -> HttpResponse {
    answer(per_user::logout_others(&session).await)
}

async fn logout_everywhere(session: Session<GatewaySession>) -> HttpResponse {
    answer(per_user::logout_everywhere(&session).await)
}

async fn api_data(session: Session<GatewaySession>) -> HttpResponse {
    let calls = session.update_api_calls(|c| {
        *c += 1;
        *c
    });
    HttpResponse::Ok()
        .json(json!({ "calls": calls, "session_id": session.manager().client_id(&session.id()) }))
}

/// The "Authentication Middleware" of the Fiber reference: `401` unless the
/// session says the user logged in.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let authenticated = match req.session::<GatewaySession>().await {
        Ok(session) => session.authenticated(),
        Err(rejection) => {
            let res = rejection.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    if !authenticated {
        let res = HttpResponse::Unauthorized().json(json!({ "error": "Unauthorized" }));
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// How many layers of percent-encoding [`has_dot_segment`] peels off; a path
/// still encoded after that many is refused as well.
const MAX_DECODES: usize = 3;

/// Whether the raw request path could name a different route once a server
/// downstream normalizes it, and so must not be routed (or forwarded) as it is:
///
/// - a `.` or `..` segment (`/public/../dashboard/x`), also percent-encoded
///   (`%2e`, `%2E%2e`, `.%2e`) or encoded several times (`%252e`), and also
///   followed by `;parameters` (`..;x`, which some servers read as `..`);
/// - an encoded slash or backslash (`%2f`, `%5C`) or a raw backslash, which
///   some servers read as `/` and so as a segment boundary routing never saw.
///
/// Queries are not part of the path: pass `uri.path()`, not the whole target.
///
/// ```
/// use sessionkit_examples::gateway::has_dot_segment;
/// assert!(has_dot_segment("/public/../dashboard/x"));
/// assert!(has_dot_segment("/public/%2e%2E/dashboard/x"));
/// assert!(has_dot_segment("/public/..%2Fdashboard"));
/// assert!(!has_dot_segment("/public/docs/v1.2/intro"));
/// assert!(!has_dot_segment("/public/...")); // not a dot segment
/// ```
#[must_use]
pub fn has_dot_segment(path: &str) -> bool {
    let mut current = path.as_bytes().to_vec();
    for _ in 0..=MAX_DECODES {
        if reads_as_other_segments(&current) {
            return true;
        }
        match percent_decode_once(&current) {
            Some(decoded) => current = decoded,
            None => return false,
        }
    }
    true
}

/// [`has_dot_segment`] for one layer of encoding.
fn reads_as_other_segments(path: &[u8]) -> bool {
    let encoded_separator = path.windows(3).any(|w| {
        w[0] == b'%' && (w[1..].eq_ignore_ascii_case(b"2f") || w[1..].eq_ignore_ascii_case(b"5c"))
    });
    encoded_separator
        || path.contains(&b'\\')
        || path.split(|&b| b == b'/').any(|segment| {
            let name = segment.split(|&b| b == b';').next().unwrap_or_default();
            name == b"." || name == b".."
        })
}

/// `path` with every `%XX` escape decoded, or `None` when it holds none.
fn percent_decode_once(path: &[u8]) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(path.len());
    let mut decoded_any = false;
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        let escape = match (b, path.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex(hi).zip(hex(lo)).map(|(hi, lo)| (hi << 4) | lo),
            _ => None,
        };
        match escape {
            Some(byte) => {
                out.push(byte);
                decoded_any = true;
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    decoded_any.then_some(out)
}

/// Refuses, with `400 {"error": "Bad request"}`, every request whose path
/// [`has_dot_segment`]: such a request is never routed, so it can neither
/// skip the login check of `/dashboard` by entering through `/public/..`
/// nor reach the downstream service. Registered outermost in [`gateway_app`].
///
/// # Errors
/// Whatever the inner service returns.
pub async fn reject_dot_segments(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if has_dot_segment(req.uri().path()) {
        tracing::debug!(
            path = req.uri().path(),
            "dot segment or encoded separator refused"
        );
        let res = HttpResponse::BadRequest().json(json!({ "error": "Bad request" }));
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Headers that belong to one connection and are not forwarded (both
/// gateway examples use this list).
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "host",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
];

/// Whether header `name` (lower case, as header maps keep it) is hop-by-hop.
#[must_use]
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

fn hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop(name.as_str())
}

/// Forwards the request (headers already mapped) to the downstream service
/// and returns its answer.
async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    client: web::Data<awc::Client>,
    downstream: web::Data<Downstream>,
) -> HttpResponse {
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = client.request(req.method().clone(), format!("{}{path}", downstream.0));
    for (name, value) in req.headers().iter().filter(|(n, _)| !hop_by_hop(n)) {
        out = out.append_header((name.clone(), value.clone()));
    }
    let mut answer = match out.send_body(body).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "downstream service unreachable");
            return HttpResponse::BadGateway().json(json!({ "error": "Bad gateway" }));
        }
    };
    let body = match answer.body().limit(1024 * 1024).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "downstream answer unreadable");
            return HttpResponse::BadGateway().json(json!({ "error": "Bad gateway" }));
        }
    };
    let mut res = HttpResponse::build(answer.status());
    for (name, value) in answer.headers().iter().filter(|(n, _)| !hop_by_hop(n)) {
        res.append_header((name.clone(), value.clone()));
    }
    res.body(body)
}

/// The downstream "dashboard service": answers every request with what it
/// received, `{"path": "...", "headers": {name: value}}`; a header received
/// several times appears once, its values joined with `, `.
pub fn dashboard_app() -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new().default_service(web::to(echo))
}

async fn echo(req: HttpRequest) -> HttpResponse {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    HttpResponse::Ok().json(json!({ "path": req.path(), "headers": headers }))
}

fn port(name: &'static str, default: u16) -> Result<u16, GatewayError> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| GatewayError::Port { name, value }),
        Err(_) => Ok(default),
    }
}

/// What the environment asks of a gateway example (both the actix and the
/// axum one read it the same way).
pub struct GatewayEnv {
    /// `PORT` (8080).
    pub port: u16,
    /// `DOWNSTREAM_PORT` (8081).
    pub downstream_port: u16,
    /// The YAML file `SESSIONKIT_CONFIG` names, or [`GatewayConfig::default`].
    pub config: GatewayConfig,
    /// Where sessions are kept: `SESSION_STORE=cookie`, else the store
    /// `REDIS_URL` or `DATABASE_URL` names ([`crate::backend`]).
    pub backend: crate::backend::Backend,
    /// `SESSION_KEYS`: signed ids and encryption at rest, when set.
    pub keys: Option<crate::keys::SessionKeys>,
}

impl std::fmt::Debug for GatewayEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayEnv")
            .field("port", &self.port)
            .field("downstream_port", &self.downstream_port)
            .field("config", &self.config)
            .field("backend", &self.backend)
            .field("keys", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayEnv {
    /// Reads `PORT`, `DOWNSTREAM_PORT`, `SESSIONKIT_CONFIG`,
    /// `SESSION_STORE`, `REDIS_URL`, `DATABASE_URL` (and connects to
    /// PostgreSQL when it is set) and `SESSION_KEYS` ([`crate::backend`],
    /// [`crate::keys`]).
    ///
    /// # Errors
    /// [`GatewayError`] when a value is malformed, the config is refused or
    /// the store cannot be set up.
    pub async fn read() -> Result<Self, GatewayError> {
        let port_value = port("PORT", 8080)?;
        let downstream_port = port("DOWNSTREAM_PORT", 8081)?;
        let config = match crate::config_file_from_env()? {
            Some(yaml) => GatewayConfig::from_yaml(&yaml)?,
            None => GatewayConfig::default(),
        };
        let keys = crate::keys::SessionKeys::from_env()?;
        let backend = crate::backend::backend_from_env(keys.as_ref()).await?;
        Ok(Self {
            port: port_value,
            downstream_port,
            config,
            backend,
            keys,
        })
    }

    /// The session manager: the backend and config, with signed ids and
    /// encryption at rest on a server store when `SESSION_KEYS` is set.
    ///
    /// # Errors
    /// [`GatewayError::Config`], [`GatewayError::Backend`].
    pub fn manager(&self) -> Result<SessionManager<GatewaySession>, GatewayError> {
        Ok(crate::backend::builder(
            self.keys.as_ref(),
            &self.backend,
            self.config.session.clone(),
        )?
        .build()?)
    }

    /// The downstream service's base URL.
    #[must_use]
    pub fn downstream_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.downstream_port)
    }
}

/// Runs the gateway on `127.0.0.1:$PORT` (8080) and the dashboard service on
/// `127.0.0.1:$DOWNSTREAM_PORT` (8081), configured by the YAML file named by
/// `SESSIONKIT_CONFIG` (else [`GatewayConfig::default`]), with the store
/// `REDIS_URL` or `DATABASE_URL` names (else in memory; both is an error).
///
/// # Errors
/// [`GatewayError`] when the configuration is refused or a port cannot be bound.
pub async fn run_from_env() -> Result<(), GatewayError> {
    let env = GatewayEnv::read().await?;
    let (gateway_port, downstream_port) = (env.port, env.downstream_port);
    let downstream_url = env.downstream_url();
    let gateway = Gateway::with_manager(env.manager()?, &env.config.headers, downstream_url)?
        .with_metrics(install_prometheus()?);

    let downstream = HttpServer::new(dashboard_app)
        .workers(1)
        .bind(("127.0.0.1", downstream_port))?
        .run();
    let front = HttpServer::new(move || gateway_app(gateway.clone()))
        .workers(2)
        .bind(("127.0.0.1", gateway_port))?
        .run();
    tracing::info!(
        "gateway on http://127.0.0.1:{gateway_port}, dashboard service on http://127.0.0.1:{downstream_port}"
    );
    futures_util::future::try_join(downstream, front).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_every_encoding_are_found() {
        for path in [
            "/..",
            "/.",
            "/public/..",
            "/public/.",
            "/public/../dashboard/x",
            "/public/./x",
            "/./public/x",
            "/public/%2e%2e/dashboard/x",
            "/public/%2E%2E/dashboard/x",
            "/public/.%2e/dashboard/x",
            "/public/%2e./dashboard/x",
            "/public/%2e/x",
            "/public/%252e%252e/dashboard/x",
            "/public/%25252e/x",
            "/public/..;x/dashboard",
            "/public/.;/x",
            "/public/%2e%2e%3b/dashboard",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn encoded_separators_and_backslashes_are_found() {
        for path in [
            "/public/..%2fdashboard/x",
            "/public/a%2Fb",
            "/public/a%5cb",
            "/public/a%5Cb",
            "/public/a\\b",
            "/public/..\\dashboard",
            "/public/a%252fb",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "",
            "/public/x",
            "/public/docs/v1.2/intro",
            "/public/.well-known/x",
            "/public/.hidden",
            "/public/x.",
            "/public/...",
            "/public/..x",
            "/public/a%20b",
            "/public/100%",
            "/public/%zz",
            "/public/%2",
            "/dashboard/stats/today",
            "/public//x",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn endless_encoding_is_refused() {
        let mut path = "/public/x".to_owned();
        for _ in 0..=MAX_DECODES + 1 {
            path = path.replace('%', "%25").replace('x', "%78");
        }
        assert!(has_dot_segment(&path), "{path}");
    }

    #[test]
    fn decoding_peels_one_layer() {
        assert_eq!(
            percent_decode_once(b"a%2eb%zz%4"),
            Some(b"a.b%zz%4".to_vec())
        );
        assert_eq!(percent_decode_once(b"plain"), None);
        assert_eq!(percent_decode_once(b"%25"), Some(b"%".to_vec()));
    }
}

//! One benchmark server: `bench-server <mode> <port>`.
//!
//! Every mode serves the same three routes on 127.0.0.1 with exactly one
//! worker thread (actix `.workers(1)`, or a current-thread tokio runtime for
//! axum):
//!
//! * `GET /counter` reads the integer `visits` from the session, adds one,
//!   stores it and responds with the new value;
//! * `GET /read` reads `visits` (0 when absent) and responds with it;
//! * `GET /plain` sits behind the session middleware but never touches the
//!   session.
//!
//! The mode and port may also come from `BENCH_MODE` / `BENCH_PORT`; the Redis
//! modes read `REDIS_URL`, the Redis Cluster mode `REDIS_CLUSTER_URLS`
//! (comma-separated node URLs), the PostgreSQL modes `DATABASE_URL` (each
//! with a pool of [`POSTGRES_POOL`] connections).
//!
//! `BENCH_PRELOAD=N` (the scale run): before it listens, the server writes
//! N sessions straight into its store, session `i` under the id of
//! [`session_bench::scale`] with `visits = 0`, so requests can be spread over
//! N live sessions from the first one.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use session_bench::Mode;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mode: Mode = args
        .next()
        .or_else(|| std::env::var("BENCH_MODE").ok())
        .context("usage: bench-server <mode> <port> (or BENCH_MODE / BENCH_PORT)")?
        .parse()?;
    let port: u16 = args
        .next()
        .or_else(|| std::env::var("BENCH_PORT").ok())
        .context("usage: bench-server <mode> <port> (or BENCH_MODE / BENCH_PORT)")?
        .parse()
        .context("port must be a number between 0 and 65535")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    match mode {
        Mode::Bare => actix_modes::bare(addr),
        Mode::ActixCookie => actix_modes::cookie(addr),
        Mode::ActixRedis => actix_modes::redis(addr, &redis_url()?),
        Mode::TowerMemory => tower_modes::memory(addr),
        Mode::TowerMemoryPrivate => tower_modes::memory_private(addr),
        Mode::SessionkitCookie => sessionkit_modes::cookie(addr),
        Mode::SessionkitAxumCookie => sessionkit_axum_modes::cookie(addr),
        Mode::TowerRedis => tower_modes::redis(addr, &redis_url()?),
        Mode::SessionkitMemory => sessionkit_modes::memory(addr),
        Mode::SessionkitRedis => sessionkit_modes::redis(addr, &redis_url()?),
        Mode::SessionkitRedisSealed => sessionkit_modes::redis_sealed(addr, &redis_url()?),
        Mode::SessionkitRedisCache => sessionkit_modes::redis_cached(addr, &redis_url()?),
        Mode::SessionkitAxumMemory => sessionkit_axum_modes::memory(addr),
        Mode::SessionkitAxumRedis => sessionkit_axum_modes::redis(addr, &redis_url()?),
        Mode::SessionkitAxumRedisCluster => {
            sessionkit_axum_modes::cluster(addr, &redis_cluster_urls()?)
        }
        Mode::SessionkitPostgres => sessionkit_modes::postgres(addr, &database_url()?),
        Mode::SessionkitAxumPostgres => sessionkit_axum_modes::postgres(addr, &database_url()?),
        Mode::TowerPostgres => tower_modes::postgres(addr, &database_url()?),
        Mode::AxumSessionPostgres => axum_session_mode::postgres(addr, &database_url()?),
    }
}

/// The connections every PostgreSQL mode's pool may open (sessionkit's
/// default; sqlx's is 10).
const POSTGRES_POOL: u32 = 16;

fn database_url() -> Result<String> {
    std::env::var("DATABASE_URL").context(
        "the PostgreSQL modes need DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/bench)",
    )
}

/// sessionkit's `PostgresStore` with the benchmark's pool size, connected
/// and migrated, its sweeper on the default interval.
async fn sessionkit_postgres(url: &str) -> Result<sessionkit::PostgresStore> {
    sessionkit::PostgresStore::builder(url)
        .pool_size(POSTGRES_POOL as usize)
        .connect()
        .await
        .context("connecting sessionkit's PostgresStore")
}

fn redis_url() -> Result<String> {
    std::env::var("REDIS_URL")
        .context("the Redis modes need REDIS_URL (e.g. redis://127.0.0.1:6390)")
}

fn redis_cluster_urls() -> Result<Vec<String>> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").context(
        "the Redis Cluster mode needs REDIS_CLUSTER_URLS (e.g. redis://127.0.0.1:7000,redis://127.0.0.1:7001)",
    )?;
    Ok(urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `BENCH_PRELOAD` (0 when unset).
fn preload_count() -> Result<u64> {
    match std::env::var("BENCH_PRELOAD") {
        Ok(text) if !text.trim().is_empty() => {
            let count: u64 = text
                .trim()
                .parse()
                .with_context(|| format!("BENCH_PRELOAD={text:?} is not a number"))?;
            anyhow::ensure!(
                count <= session_bench::scale::MAX_SIZE,
                "BENCH_PRELOAD must be at most {}",
                session_bench::scale::MAX_SIZE
            );
            Ok(count)
        }
        _ => Ok(0),
    }
}

/// Fills a store with the scale run's sessions (see the module docs).
mod preload {
    use std::future::Future;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::{Context, Result};
    use session_bench::scale;

    /// Writes in flight at once (Redis: pipelined on the store's connections).
    const IN_FLIGHT: usize = 256;
    /// How long the preloaded sessions stay live: longer than any run.
    const LIFETIME: Duration = Duration::from_secs(24 * 3600);

    fn now_ms() -> Result<u64> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        u64::try_from(since.as_millis()).context("the clock is past the year 584 million")
    }

    /// Runs `write(i)` for every `i < count`, `IN_FLIGHT` at a time, on the
    /// current (single-threaded) runtime, and logs how long it took.
    pub async fn run<F, Fut>(what: &str, count: u64, write: F) -> Result<()>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<()>> + 'static,
    {
        if count == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut tasks = tokio::task::JoinSet::new();
                for index in 0..count {
                    if tasks.len() >= IN_FLIGHT {
                        if let Some(done) = tasks.join_next().await {
                            done.context("a preload task panicked")??;
                        }
                    }
                    tasks.spawn_local(write(index));
                }
                while let Some(done) = tasks.join_next().await {
                    done.context("a preload task panicked")??;
                }
                Ok::<(), anyhow::Error>(())
            })
            .await?;
        eprintln!(
            "bench-server: preloaded {count} {what} sessions in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Session `index` as sessionkit's runtime would create it: `visits`
    /// = 0, the default idle timeout's worth of life (a day here).
    pub fn sessionkit_write(index: u64) -> Result<sessionkit::store::Write> {
        use sessionkit::store::{Meta, Write, WriteKind};
        use sessionkit::SessionData;

        use super::sessionkit_modes::Counter;

        let now = now_ms()?;
        let lifetime = u64::try_from(LIFETIME.as_millis()).context("lifetime in ms")?;
        let mut visits = Vec::new();
        Counter::default()
            .encode_field(0, &mut visits)
            .context("encoding visits")?;
        Ok(Write {
            id: sessionkit::id::SessionId::parse(&scale::sessionkit_id(index))
                .context("a preload id is not a valid session id")?,
            kind: WriteKind::Create,
            now,
            meta: Meta::new(now, lifetime, None),
            meta_changed: true,
            ttl_ms: lifetime,
            set: vec![(Counter::FIELDS[0].name, visits.into())],
            remove: Vec::new(),
            expect: Vec::new(),
            principal: None,
        })
    }

    /// Fills a sessionkit store.
    pub async fn sessionkit<S>(store: &S, count: u64) -> Result<()>
    where
        S: sessionkit::store::SessionStore + Clone,
    {
        run("sessionkit", count, |index| {
            let store = store.clone();
            async move {
                let write = sessionkit_write(index)?;
                store
                    .write(&write)
                    .await
                    .with_context(|| format!("preloading session {index}"))?;
                Ok(())
            }
        })
        .await
    }

    /// The tower-sessions record of session `index`, for either version of
    /// tower-sessions-core.
    macro_rules! tower_record {
        ($krate:ident, $index:expr) => {{
            let mut data = std::collections::HashMap::new();
            data.insert("visits".to_owned(), serde_json::Value::from(0u32));
            $krate::session::Record {
                id: $krate::session::Id(scale::tower_id($index)),
                data,
                expiry_date: time::OffsetDateTime::now_utc() + LIFETIME,
            }
        }};
    }

    /// Fills tower-sessions 0.15's `MemoryStore`.
    pub async fn tower_memory(store: &tower_sessions::MemoryStore, count: u64) -> Result<()> {
        use tower_sessions::SessionStore as _;
        run("tower-sessions", count, |index| {
            let store = store.clone();
            async move {
                store
                    .save(&tower_record!(tower_sessions, index))
                    .await
                    .with_context(|| format!("preloading session {index}"))
            }
        })
        .await
    }

    /// Fills a store on tower-sessions-core 0.14 (tower-sessions-redis-store,
    /// tower-sessions-sqlx-store). The Redis store's `save` only overwrites
    /// (`SET XX`), so this uses `create` (`SET NX`; the sqlx store checks
    /// and inserts), which keeps the id on an empty store.
    pub async fn tower_014<S>(store: &S, count: u64) -> Result<()>
    where
        S: tower_sessions_014::SessionStore + Clone,
    {
        run("tower-sessions", count, |index| {
            let store = store.clone();
            async move {
                let mut record = tower_record!(tower_sessions_014, index);
                store
                    .create(&mut record)
                    .await
                    .with_context(|| format!("preloading session {index}"))?;
                anyhow::ensure!(
                    record.id.0 == scale::tower_id(index),
                    "preloaded session {index} already existed (store not emptied?)"
                );
                Ok(())
            }
        })
        .await
    }
}

mod actix_modes {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU32, Ordering};

    use actix_session::storage::{CookieSessionStore, RedisSessionStore, SessionStore};
    use actix_session::{Session, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::{web, App, HttpServer};
    use anyhow::{Context, Result};

    /// Runs `future` to completion on a fresh actix system (tokio
    /// current-thread runtime underneath).
    pub(crate) fn block_on<F: std::future::Future<Output = Result<()>>>(future: F) -> Result<()> {
        actix_web::rt::System::new().block_on(future)
    }

    /// Serves the three routes with actix-session over the store that
    /// `make_store` builds (once per worker, and there is one worker).
    async fn serve<S, F>(addr: SocketAddr, make_store: F) -> Result<()>
    where
        S: SessionStore + 'static,
        F: Fn() -> S + Clone + Send + 'static,
    {
        let key = Key::generate();
        HttpServer::new(move || {
            App::new()
                .wrap(
                    SessionMiddleware::builder(make_store(), key.clone())
                        .cookie_secure(false)
                        .build(),
                )
                .route("/counter", web::get().to(counter))
                .route("/read", web::get().to(read))
                .route("/plain", web::get().to(plain))
        })
        .workers(1)
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?
        .run()
        .await
        .context("running the actix server")
    }

    async fn counter(session: Session) -> actix_web::Result<String> {
        let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
        session.insert("visits", visits)?;
        Ok(visits.to_string())
    }

    async fn read(session: Session) -> actix_web::Result<String> {
        Ok(session.get::<u32>("visits")?.unwrap_or(0).to_string())
    }

    async fn plain() -> &'static str {
        "plain"
    }

    /// `bare`: no session middleware; `/counter` and `/read` use a
    /// process-wide counter so they still produce a changing number.
    pub fn bare(addr: SocketAddr) -> Result<()> {
        static VISITS: AtomicU32 = AtomicU32::new(0);
        async fn bare_counter() -> String {
            (VISITS.fetch_add(1, Ordering::Relaxed) + 1).to_string()
        }
        async fn bare_read() -> String {
            VISITS.load(Ordering::Relaxed).to_string()
        }
        block_on(async move {
            HttpServer::new(|| {
                App::new()
                    .route("/counter", web::get().to(bare_counter))
                    .route("/read", web::get().to(bare_read))
                    .route("/plain", web::get().to(plain))
            })
            .workers(1)
            .bind(addr)
            .with_context(|| format!("binding {addr}"))?
            .run()
            .await
            .context("running the actix server")
        })
    }

    pub fn cookie(addr: SocketAddr) -> Result<()> {
        block_on(serve(addr, CookieSessionStore::default))
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        let url = url.to_owned();
        block_on(async move {
            let pool = deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .context("creating the deadpool-redis pool")?;
            let store = RedisSessionStore::new_pooled(pool)
                .await
                .context("connecting actix-session's RedisSessionStore")?;
            serve(addr, move || store.clone()).await
        })
    }
}

/// sessionkit-actix: a typed `Counter` session, `SessionManager` over
/// sessionkit's `MemoryStore` or `RedisStore`.
mod sessionkit_modes {
    use std::net::SocketAddr;

    use actix_web::{web, App, HttpServer};
    use anyhow::{Context, Result};
    use serde::{Deserialize, Serialize};
    use sessionkit::store::SessionStore;
    use sessionkit::{Config, MemoryStore, RedisStore, SessionData, SessionManager};
    use sessionkit_actix::{Session, SessionMiddleware};

    /// The whole session.
    #[derive(SessionData, Default, Debug, Clone, Serialize, Deserialize)]
    pub struct Counter {
        /// Visits so far.
        pub visits: u32,
    }

    async fn counter(session: Session<Counter>) -> String {
        session
            .update_visits(|visits| {
                *visits += 1;
                *visits
            })
            .to_string()
    }

    async fn read(session: Session<Counter>) -> String {
        session.visits().to_string()
    }

    async fn plain() -> &'static str {
        "plain"
    }

    /// Default configuration except a non-`Secure` cookie (plain HTTP), as
    /// for the other modes.
    pub(crate) fn manager(store: impl SessionStore) -> Result<SessionManager<Counter>> {
        let config = Config::builder()
            .cookie_secure(false)
            .build()
            .context("building the sessionkit config")?;
        SessionManager::builder(store)
            .config(config)
            .build()
            .context("building the sessionkit manager")
    }

    async fn serve(addr: SocketAddr, manager: SessionManager<Counter>) -> Result<()> {
        let middleware = SessionMiddleware::new(manager);
        HttpServer::new(move || {
            App::new()
                .wrap(middleware.clone())
                .route("/counter", web::get().to(counter))
                .route("/read", web::get().to(read))
                .route("/plain", web::get().to(plain))
        })
        .workers(1)
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?
        .run()
        .await
        .context("running the actix server")
    }

    pub fn memory(addr: SocketAddr) -> Result<()> {
        let store = MemoryStore::new();
        super::actix_modes::block_on(async move {
            super::preload::sessionkit(&store, super::preload_count()?).await?;
            serve(addr, manager(store)?).await
        })
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        let store = RedisStore::from_url(url).context("configuring sessionkit's RedisStore")?;
        super::actix_modes::block_on(async move {
            super::preload::sessionkit(&store, super::preload_count()?).await?;
            serve(addr, manager(store)?).await
        })
    }

    /// [`redis`] with the read cache on: repeated loads served from memory,
    /// kept coherent by Redis' client tracking.
    pub fn redis_cached(addr: SocketAddr, url: &str) -> Result<()> {
        let store = RedisStore::builder(url)
            .read_cache(1_000_000)
            .build()
            .context("configuring sessionkit's RedisStore with its read cache")?;
        super::actix_modes::block_on(async move { serve(addr, manager(store)?).await })
    }

    /// The session in a private cookie (`CookieStore::private`), under a
    /// fixed benchmark key.
    pub(crate) fn cookie_manager() -> Result<SessionManager<Counter>> {
        let keys = sessionkit::keys::Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())
            .context("the benchmark keyring")?;
        let config = Config::builder()
            .cookie_secure(false)
            .build()
            .context("building the sessionkit config")?;
        SessionManager::cookie_builder(sessionkit::CookieStore::private(keys))
            .config(config)
            .build()
            .context("building the cookie manager")
    }

    pub fn cookie(addr: SocketAddr) -> Result<()> {
        super::actix_modes::block_on(async move { serve(addr, cookie_manager()?).await })
    }

    /// [`redis`] with what `SESSION_KEYS` turns on: field values sealed at
    /// rest (`EncryptedStore`) and signed ids, under a fixed benchmark key.
    pub fn redis_sealed(addr: SocketAddr, url: &str) -> Result<()> {
        let keys = sessionkit::keys::Keyring::new([7u8; 32], Vec::<Vec<u8>>::new())
            .context("the benchmark keyring")?;
        let store = RedisStore::from_url(url).context("configuring sessionkit's RedisStore")?;
        let store = sessionkit::EncryptedStore::new(store, keys.clone());
        super::actix_modes::block_on(async move {
            let config = Config::builder()
                .cookie_secure(false)
                .build()
                .context("building the sessionkit config")?;
            let manager = SessionManager::builder(store)
                .config(config)
                .signed_ids(sessionkit::SignedIds::new(keys))
                .build()
                .context("building the sealed manager")?;
            serve(addr, manager).await
        })
    }

    pub fn postgres(addr: SocketAddr, url: &str) -> Result<()> {
        let url = url.to_owned();
        super::actix_modes::block_on(async move {
            let store = super::sessionkit_postgres(&url).await?;
            super::preload::sessionkit(&store, super::preload_count()?).await?;
            serve(addr, manager(store)?).await
        })
    }
}

/// sessionkit-axum: the same typed `Counter` session and manager, on axum
/// with the tower-sessions modes' runtime (one current-thread runtime).
mod sessionkit_axum_modes {
    use std::net::SocketAddr;

    use anyhow::{Context, Result};
    use axum::routing::get;
    use axum::Router;
    use sessionkit::store::SessionStore;
    use sessionkit::{MemoryStore, RedisStore, SessionManager};
    use sessionkit_axum::{Session, SessionLayer};

    use super::sessionkit_modes::{manager, Counter, CounterSessionExt};

    async fn counter(session: Session<Counter>) -> String {
        session
            .update_visits(|visits| {
                *visits += 1;
                *visits
            })
            .to_string()
    }

    async fn read(session: Session<Counter>) -> String {
        session.visits().to_string()
    }

    async fn plain() -> &'static str {
        "plain"
    }

    fn app(manager: SessionManager<Counter>) -> Router {
        Router::new()
            .route("/counter", get(counter))
            .route("/read", get(read))
            .route("/plain", get(plain))
            .layer(SessionLayer::new(manager))
    }

    /// Preloads `store` (`BENCH_PRELOAD`), then serves it.
    fn run<S: SessionStore + Clone>(addr: SocketAddr, store: S) -> Result<()> {
        super::tower_modes::block_on(async move {
            super::preload::sessionkit(&store, super::preload_count()?).await?;
            super::tower_modes::serve(addr, app(manager(store)?)).await
        })
    }

    pub fn memory(addr: SocketAddr) -> Result<()> {
        run(addr, MemoryStore::new())
    }

    pub fn cookie(addr: SocketAddr) -> Result<()> {
        super::tower_modes::block_on(async move {
            let manager = super::sessionkit_modes::cookie_manager()?;
            super::tower_modes::serve(addr, app(manager)).await
        })
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        run(
            addr,
            RedisStore::from_url(url).context("configuring sessionkit's RedisStore")?,
        )
    }

    pub fn postgres(addr: SocketAddr, url: &str) -> Result<()> {
        let url = url.to_owned();
        super::tower_modes::block_on(async move {
            let store = super::sessionkit_postgres(&url).await?;
            super::preload::sessionkit(&store, super::preload_count()?).await?;
            super::tower_modes::serve(addr, app(manager(store)?)).await
        })
    }

    /// The same on a Redis Cluster (three local masters in the scale run).
    pub fn cluster(addr: SocketAddr, urls: &[String]) -> Result<()> {
        let store = RedisStore::cluster_builder(urls.iter().cloned())
            .build()
            .context("configuring sessionkit's RedisStore for a cluster")?;
        run(addr, store)
    }
}

/// The same handlers for tower-sessions 0.15 and 0.14 (the latter is what
/// tower-sessions-redis-store 0.16 is built on).
macro_rules! tower_handlers {
    ($module:ident, $krate:ident) => {
        mod $module {
            use axum::http::StatusCode;
            use axum::routing::get;
            use axum::Router;
            use $krate::Session;

            fn internal<E: std::fmt::Display>(err: E) -> (StatusCode, String) {
                (StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
            }

            async fn counter(session: Session) -> Result<String, (StatusCode, String)> {
                let visits = session
                    .get::<u32>("visits")
                    .await
                    .map_err(internal)?
                    .unwrap_or(0)
                    + 1;
                session.insert("visits", visits).await.map_err(internal)?;
                Ok(visits.to_string())
            }

            async fn read(session: Session) -> Result<String, (StatusCode, String)> {
                let visits = session
                    .get::<u32>("visits")
                    .await
                    .map_err(internal)?
                    .unwrap_or(0);
                Ok(visits.to_string())
            }

            async fn plain() -> &'static str {
                "plain"
            }

            /// The three routes, before the session layer is added.
            pub fn routes() -> Router {
                Router::new()
                    .route("/counter", get(counter))
                    .route("/read", get(read))
                    .route("/plain", get(plain))
            }
        }
    };
}

tower_handlers!(tower015, tower_sessions);
tower_handlers!(tower014, tower_sessions_014);

mod tower_modes {
    use std::net::SocketAddr;

    use anyhow::{Context, Result};
    use axum::Router;
    use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
    use tower_sessions_redis_store::RedisStore;

    /// Runs `future` on a current-thread tokio runtime: one worker thread.
    pub(crate) fn block_on<F: std::future::Future<Output = Result<()>>>(future: F) -> Result<()> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the tokio runtime")?
            .block_on(future)
    }

    pub(crate) async fn serve(addr: SocketAddr, app: Router) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        axum::serve(listener, app)
            .await
            .context("running the axum server")
    }

    pub fn memory(addr: SocketAddr) -> Result<()> {
        block_on(async move {
            let store = tower_sessions::MemoryStore::default();
            super::preload::tower_memory(&store, super::preload_count()?).await?;
            let layer = tower_sessions::SessionManagerLayer::new(store).with_secure(false);
            serve(addr, super::tower015::routes().layer(layer)).await
        })
    }

    /// [`memory`] with the id cookie encrypted (`with_private`).
    pub fn memory_private(addr: SocketAddr) -> Result<()> {
        block_on(async move {
            let store = tower_sessions::MemoryStore::default();
            let layer = tower_sessions::SessionManagerLayer::new(store)
                .with_secure(false)
                .with_private(tower_sessions::cookie::Key::generate());
            serve(addr, super::tower015::routes().layer(layer)).await
        })
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        let url = url.to_owned();
        block_on(async move {
            let config = Config::from_url(&url).context("parsing REDIS_URL for fred")?;
            let pool = Pool::new(config, None, None, None, 1).context("creating the fred pool")?;
            // The connection task is driven by the runtime; `wait_for_connect`
            // reports whether it came up.
            let _connection = pool.connect();
            pool.wait_for_connect()
                .await
                .context("connecting fred to Redis")?;
            let store = RedisStore::new(pool);
            super::preload::tower_014(&store, super::preload_count()?).await?;
            let layer = tower_sessions_014::SessionManagerLayer::new(store).with_secure(false);
            serve(addr, super::tower014::routes().layer(layer)).await
        })
    }

    /// tower-sessions-sqlx-store's `PostgresStore` (its own table, made by
    /// its `migrate`), on a sqlx pool of the benchmark's size.
    pub fn postgres(addr: SocketAddr, url: &str) -> Result<()> {
        use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;

        let url = url.to_owned();
        block_on(async move {
            let pool = PgPoolOptions::new()
                .max_connections(super::POSTGRES_POOL)
                .connect(&url)
                .await
                .context("connecting sqlx 0.8 to PostgreSQL")?;
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
            store
                .migrate()
                .await
                .context("creating tower-sessions-sqlx-store's table")?;
            super::preload::tower_014(&store, super::preload_count()?).await?;
            let layer = tower_sessions_014::SessionManagerLayer::new(store).with_secure(false);
            serve(addr, super::tower014::routes().layer(layer)).await
        })
    }
}

/// axum_session with axum_session_sqlx's Postgres pool. Its in-memory copy
/// of each session is switched off (`with_memory_lifetime(0)`), so every
/// request loads the session from PostgreSQL as the other stores' modes do;
/// with its default (an hour in memory) it would measure a memory cache.
mod axum_session_mode {
    use std::net::SocketAddr;

    use anyhow::{Context, Result};
    use axum::routing::get;
    use axum::Router;
    use axum_session::{Session, SessionConfig, SessionLayer, SessionStore};
    use axum_session_sqlx::SessionPgPool;

    async fn counter(session: Session<SessionPgPool>) -> String {
        let visits = session.get::<u32>("visits").unwrap_or(0) + 1;
        session.set("visits", visits);
        visits.to_string()
    }

    async fn read(session: Session<SessionPgPool>) -> String {
        session.get::<u32>("visits").unwrap_or(0).to_string()
    }

    async fn plain() -> &'static str {
        "plain"
    }

    pub fn postgres(addr: SocketAddr, url: &str) -> Result<()> {
        let url = url.to_owned();
        super::tower_modes::block_on(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(super::POSTGRES_POOL)
                .connect(&url)
                .await
                .context("connecting sqlx 0.9 to PostgreSQL")?;
            let config = SessionConfig::default()
                .with_secure(false)
                .with_memory_lifetime(time::Duration::ZERO);
            let store = SessionStore::<SessionPgPool>::new(Some(pool.into()), config)
                .await
                .map_err(|e| anyhow::anyhow!("creating axum_session's store: {e}"))?;
            let app = Router::new()
                .route("/counter", get(counter))
                .route("/read", get(read))
                .route("/plain", get(plain))
                .layer(SessionLayer::new(store));
            super::tower_modes::serve(addr, app).await
        })
    }
}

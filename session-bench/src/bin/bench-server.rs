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
//! modes read `REDIS_URL`.

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
        Mode::TowerRedis => tower_modes::redis(addr, &redis_url()?),
        Mode::SessionkitMemory => sessionkit_modes::memory(addr),
        Mode::SessionkitRedis => sessionkit_modes::redis(addr, &redis_url()?),
        Mode::SessionkitAxumMemory => sessionkit_axum_modes::memory(addr),
        Mode::SessionkitAxumRedis => sessionkit_axum_modes::redis(addr, &redis_url()?),
    }
}

fn redis_url() -> Result<String> {
    std::env::var("REDIS_URL")
        .context("the Redis modes need REDIS_URL (e.g. redis://127.0.0.1:6390)")
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
    use sessionkit::{Config, MemoryStore, RedisStore, SessionData, SessionManager, SessionStore};
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
        let manager = manager(MemoryStore::new())?;
        super::actix_modes::block_on(serve(addr, manager))
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        let store = RedisStore::from_url(url).context("configuring sessionkit's RedisStore")?;
        let manager = manager(store)?;
        super::actix_modes::block_on(serve(addr, manager))
    }
}

/// sessionkit-axum: the same typed `Counter` session and manager, on axum
/// with the tower-sessions modes' runtime (one current-thread runtime).
mod sessionkit_axum_modes {
    use std::net::SocketAddr;

    use anyhow::{Context, Result};
    use axum::routing::get;
    use axum::Router;
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

    pub fn memory(addr: SocketAddr) -> Result<()> {
        let manager = manager(MemoryStore::new())?;
        super::tower_modes::block_on(super::tower_modes::serve(addr, app(manager)))
    }

    pub fn redis(addr: SocketAddr, url: &str) -> Result<()> {
        let store = RedisStore::from_url(url).context("configuring sessionkit's RedisStore")?;
        let manager = manager(store)?;
        super::tower_modes::block_on(super::tower_modes::serve(addr, app(manager)))
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
            let layer =
                tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                    .with_secure(false);
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
            let layer = tower_sessions_014::SessionManagerLayer::new(RedisStore::new(pool))
                .with_secure(false);
            serve(addr, super::tower014::routes().layer(layer)).await
        })
    }
}

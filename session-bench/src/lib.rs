//! Shared definitions for the sessionkit load benchmark.
//!
//! The load benchmark has two binaries:
//!
//! * `bench-server` serves `GET /counter`, `GET /read` and `GET /plain` with
//!   one of the session implementations listed in [`Mode`], on exactly one
//!   worker thread.
//! * `bench-run` starts each server in turn (and a private `redis-server` for
//!   the Redis modes, a private PostgreSQL for the PostgreSQL modes, see
//!   [`postgres`]), drives it with `wrk`, samples the server's CPU time from
//!   `/proc/<pid>/stat` and Redis' `INFO commandstats`, and writes a markdown
//!   report.
//!
//! The micro-benchmarks (`benches/`, divan), `bench-memory` (bytes per stored
//! session) and `bench-micro-report` (writes `MICRO.md`) share [`fixture`]
//! (the measured session struct) and [`micro`] (divan output to markdown).

pub mod fixture;
pub mod measure;
pub mod micro;
pub mod postgres;
pub mod scale;

use std::fmt;
use std::str::FromStr;

/// Which session implementation a `bench-server` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// actix-web 4 without any session middleware: the upper bound.
    Bare,
    /// actix-session 0.11 with `CookieSessionStore`.
    ActixCookie,
    /// actix-session 0.11 with `RedisSessionStore` on a deadpool-redis pool.
    ActixRedis,
    /// tower-sessions 0.15 on axum 0.8 with `MemoryStore`.
    TowerMemory,
    /// tower-sessions 0.15 on axum 0.8 with `MemoryStore` and a private
    /// (encrypted) id cookie: tower-sessions has no cookie store, so this is
    /// its nearest to a private cookie session.
    TowerMemoryPrivate,
    /// tower-sessions 0.14 on axum 0.8 with `tower-sessions-redis-store` (fred).
    TowerRedis,
    /// sessionkit-actix with `sessionkit::MemoryStore`.
    SessionkitMemory,
    /// sessionkit-actix with `sessionkit::RedisStore` (deadpool-redis).
    SessionkitRedis,
    /// sessionkit-actix with `sessionkit::CookieStore::private`: the
    /// session sealed in the cookie.
    SessionkitCookie,
    /// sessionkit-axum with `sessionkit::CookieStore::private`.
    SessionkitAxumCookie,
    /// sessionkit-actix with `sessionkit::RedisStore` inside an
    /// `EncryptedStore` (field values sealed at rest, and signed ids): the
    /// cost of `SESSION_KEYS`. Only when named in `MODES`.
    SessionkitRedisSealed,
    /// sessionkit-actix with `sessionkit::RedisStore` and its read cache
    /// (`RedisStoreBuilder::read_cache`, RESP3 client tracking). Only when
    /// named in `MODES`.
    SessionkitRedisCache,
    /// sessionkit-axum on axum 0.8 with `sessionkit::MemoryStore` (the
    /// runtime settings of the tower-sessions modes).
    SessionkitAxumMemory,
    /// sessionkit-axum on axum 0.8 with `sessionkit::RedisStore`.
    SessionkitAxumRedis,
    /// sessionkit-axum on axum 0.8 with `sessionkit::RedisStore` on a Redis
    /// Cluster (`REDIS_CLUSTER_URLS`); only in the scale run or when named in
    /// `MODES`.
    SessionkitAxumRedisCluster,
    /// sessionkit-actix with `sessionkit::PostgresStore` (`DATABASE_URL`).
    SessionkitPostgres,
    /// sessionkit-axum on axum 0.8 with `sessionkit::PostgresStore`.
    SessionkitAxumPostgres,
    /// tower-sessions 0.14 on axum 0.8 with `tower-sessions-sqlx-store`
    /// 0.15's `PostgresStore` (sqlx 0.8).
    TowerPostgres,
    /// axum_session 0.22 on axum 0.8 with `axum_session_sqlx` 0.12's
    /// Postgres pool (sqlx 0.9), its in-memory copy of sessions off.
    AxumSessionPostgres,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 19] = [
        Mode::Bare,
        Mode::ActixCookie,
        Mode::ActixRedis,
        Mode::TowerMemory,
        Mode::TowerMemoryPrivate,
        Mode::TowerRedis,
        Mode::SessionkitMemory,
        Mode::SessionkitRedis,
        Mode::SessionkitCookie,
        Mode::SessionkitAxumCookie,
        Mode::SessionkitRedisSealed,
        Mode::SessionkitRedisCache,
        Mode::SessionkitAxumMemory,
        Mode::SessionkitAxumRedis,
        Mode::SessionkitAxumRedisCluster,
        Mode::SessionkitPostgres,
        Mode::SessionkitAxumPostgres,
        Mode::TowerPostgres,
        Mode::AxumSessionPostgres,
    ];

    /// The PostgreSQL modes, the set `MODES=postgres` names.
    pub const POSTGRES: [Mode; 4] = [
        Mode::SessionkitPostgres,
        Mode::SessionkitAxumPostgres,
        Mode::TowerPostgres,
        Mode::AxumSessionPostgres,
    ];

    /// The modes `bench-run` measures when `MODES` is not set: every mode
    /// this build can serve, except those that need a Redis Cluster or
    /// PostgreSQL (`MODES=postgres` runs those).
    pub fn available() -> Vec<Mode> {
        Mode::ALL
            .into_iter()
            .filter(|mode| {
                mode.is_available()
                    && !mode.uses_redis_cluster()
                    && !mode.uses_postgres()
                    && *mode != Mode::SessionkitRedisSealed
                    && *mode != Mode::SessionkitRedisCache
            })
            .collect()
    }

    /// The modes of the scale run (`SCALE=1`) when `SCALE_MODES` is not set:
    /// sessionkit and tower-sessions on the same framework (axum) and
    /// runtime, on every store both have, and sessionkit on a Redis Cluster.
    pub const SCALE_DEFAULT: [Mode; 5] = [
        Mode::SessionkitAxumMemory,
        Mode::TowerMemory,
        Mode::SessionkitAxumRedis,
        Mode::TowerRedis,
        Mode::SessionkitAxumRedisCluster,
    ];

    /// Whether `bench-server` can fill this mode's store with sessions
    /// before it serves (`BENCH_PRELOAD`), as the scale run needs.
    pub fn can_preload(self) -> bool {
        matches!(
            self,
            Mode::TowerMemory
                | Mode::TowerRedis
                | Mode::SessionkitMemory
                | Mode::SessionkitRedis
                | Mode::SessionkitAxumMemory
                | Mode::SessionkitAxumRedis
                | Mode::SessionkitAxumRedisCluster
                | Mode::SessionkitPostgres
                | Mode::SessionkitAxumPostgres
                | Mode::TowerPostgres
        )
    }

    /// Whether this build of `bench-server` can serve the mode.
    pub fn is_available(self) -> bool {
        match self {
            Mode::Bare
            | Mode::ActixCookie
            | Mode::ActixRedis
            | Mode::TowerMemory
            | Mode::TowerMemoryPrivate
            | Mode::TowerRedis
            | Mode::SessionkitMemory
            | Mode::SessionkitRedis
            | Mode::SessionkitCookie
            | Mode::SessionkitAxumCookie
            | Mode::SessionkitRedisSealed
            | Mode::SessionkitRedisCache
            | Mode::SessionkitAxumMemory
            | Mode::SessionkitAxumRedis
            | Mode::SessionkitAxumRedisCluster
            | Mode::SessionkitPostgres
            | Mode::SessionkitAxumPostgres
            | Mode::TowerPostgres
            | Mode::AxumSessionPostgres => true,
        }
    }

    /// The name used on the command line, in `MODES` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::ActixCookie => "actix-cookie",
            Mode::ActixRedis => "actix-redis",
            Mode::TowerMemory => "tower-memory",
            Mode::TowerMemoryPrivate => "tower-memory-private",
            Mode::TowerRedis => "tower-redis",
            Mode::SessionkitMemory => "sessionkit-memory",
            Mode::SessionkitRedis => "sessionkit-redis",
            Mode::SessionkitCookie => "sessionkit-cookie",
            Mode::SessionkitAxumCookie => "sessionkit-axum-cookie",
            Mode::SessionkitRedisSealed => "sessionkit-redis-sealed",
            Mode::SessionkitRedisCache => "sessionkit-redis-cache",
            Mode::SessionkitAxumMemory => "sessionkit-axum-memory",
            Mode::SessionkitAxumRedis => "sessionkit-axum-redis",
            Mode::SessionkitAxumRedisCluster => "sessionkit-axum-redis-cluster",
            Mode::SessionkitPostgres => "sessionkit-postgres",
            Mode::SessionkitAxumPostgres => "sessionkit-axum-postgres",
            Mode::TowerPostgres => "tower-postgres",
            Mode::AxumSessionPostgres => "axum-session-postgres",
        }
    }

    /// Whether the server needs `REDIS_CLUSTER_URLS` (a Redis Cluster)
    /// rather than `REDIS_URL`.
    pub fn uses_redis_cluster(self) -> bool {
        self == Mode::SessionkitAxumRedisCluster
    }

    /// Whether the server needs `REDIS_URL`.
    pub fn uses_redis(self) -> bool {
        matches!(
            self,
            Mode::ActixRedis
                | Mode::TowerRedis
                | Mode::SessionkitRedis
                | Mode::SessionkitRedisSealed
                | Mode::SessionkitRedisCache
                | Mode::SessionkitAxumRedis
        )
    }

    /// Whether the server needs `DATABASE_URL` (a PostgreSQL database).
    pub fn uses_postgres(self) -> bool {
        Mode::POSTGRES.contains(&self)
    }

    /// Whether the mode has a session at all (everything but `bare`).
    pub fn has_session(self) -> bool {
        self != Mode::Bare
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                anyhow::anyhow!("unknown mode {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// The three routes every server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Read `visits`, add one, store it, respond with the new value.
    Counter,
    /// Read `visits` and respond with it (0 when absent).
    Read,
    /// Behind the session middleware, never touches the session.
    Plain,
}

impl Route {
    /// Every route, in report order.
    pub const ALL: [Route; 3] = [Route::Counter, Route::Read, Route::Plain];

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Route::Counter => "/counter",
            Route::Read => "/read",
            Route::Plain => "/plain",
        }
    }

    /// Whether the load driver sends the session cookie on this route.
    pub fn sends_cookie(self) -> bool {
        matches!(self, Route::Counter | Route::Read)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>().unwrap(), mode);
        }
        assert!("nope".parse::<Mode>().is_err());
    }

    #[test]
    fn bare_is_available_and_sessionless() {
        assert!(Mode::available().contains(&Mode::Bare));
        assert!(!Mode::Bare.has_session());
        assert!(Mode::ActixRedis.uses_redis());
    }

    #[test]
    fn cluster_modes_stay_out_of_the_default_run() {
        let default = Mode::available();
        assert!(!default.contains(&Mode::SessionkitAxumRedisCluster));
        assert!(Mode::SCALE_DEFAULT.contains(&Mode::SessionkitAxumRedisCluster));
        assert!(Mode::SCALE_DEFAULT.iter().all(|m| m.can_preload()));
        assert!(!Mode::SessionkitAxumRedisCluster.uses_redis());
    }

    #[test]
    fn postgres_modes_stay_out_of_the_default_run() {
        let default = Mode::available();
        for mode in Mode::POSTGRES {
            assert!(mode.uses_postgres() && !mode.uses_redis());
            assert!(!default.contains(&mode), "{mode}");
        }
        assert!(Mode::SessionkitAxumPostgres.can_preload());
    }
}

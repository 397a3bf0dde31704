//! The builder of a [`PostgresStore`]: the URL, the pool, the names, the
//! timeouts and the sweeper's schedule.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::NoTls;

use super::error::PostgresConfigError;
use super::schema::{self, check_identifier, Names};
use super::statements::Statements;
use super::{Inner, PostgresStore};

/// The default schema.
pub(crate) const DEFAULT_SCHEMA: &str = "public";
/// The default base table name (`sessionkit`, `sessionkit_fields`, …).
pub(crate) const DEFAULT_TABLE: &str = "sessionkit";

/// Configures a [`PostgresStore`]; see each method for its default.
#[must_use]
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: String,
    table: String,
    pool_size: usize,
    connect_timeout: Duration,
    wait_timeout: Duration,
    statement_timeout: Duration,
    sweep_interval: Option<Duration>,
    sweep_batch: u32,
    migrate: bool,
    #[cfg(feature = "postgres-tls")]
    tls_root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: leave it out.
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("sweep_batch", &self.sweep_batch)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            sweep_interval: Some(Duration::from_secs(60)),
            sweep_batch: 1_000,
            migrate: true,
            #[cfg(feature = "postgres-tls")]
            tls_root_certificate: None,
        }
    }

    /// Trusts only this root certificate (PEM) for `sslmode=require`
    /// connections, instead of the system's trust store: for a PostgreSQL
    /// whose certificate is signed by a private CA. Feature `postgres-tls`.
    ///
    /// ```
    /// # let pem = b"-----BEGIN CERTIFICATE-----".to_vec();
    /// let builder = sessionkit::PostgresStore::builder("postgres://app@db/app?sslmode=require")
    ///     .tls_root_certificate(pem);
    /// # let _ = builder;
    /// ```
    #[cfg(feature = "postgres-tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// The schema the tables live in (default `public`); created if
    /// missing. Lower-case ASCII letters, digits and `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The base name of the tables and functions (default `sessionkit`:
    /// tables `sessionkit`, `sessionkit_fields`, `sessionkit_moves`,
    /// `sessionkit_schema`, functions `sessionkit_write`,
    /// `sessionkit_revoke`). Lower-case ASCII letters, digits and `_`, at
    /// most 40 characters. Use one per application sharing a database.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The most connections the pool opens (default 16). An operation holds
    /// one for a single round trip.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long opening a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an operation waits for a free pooled connection (default 1 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The server's `statement_timeout` for the store's connections
    /// (default 1 s); the client also gives up on an operation after it.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How often the background sweeper deletes expired sessions and
    /// tombstones (default every 60 s; `None`: never, e.g. when a job of
    /// your own calls [`PostgresStore::sweep`]).
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// How many rows one sweep statement deletes at most (default 1000), so
    /// no sweep holds many row locks for long.
    pub fn sweep_batch(mut self, rows: u32) -> Self {
        self.sweep_batch = rows;
        self
    }

    /// Do not create or upgrade the schema at start-up: for teams that run
    /// [`PostgresStore::schema_sql`] through their own migrations.
    pub fn skip_migration(mut self) -> Self {
        self.migrate = false;
        self
    }

    /// The schema's SQL for these names (the same as
    /// [`PostgresStore::schema_sql`]).
    ///
    /// # Errors
    /// [`PostgresConfigError::Setting`] for an invalid schema or table name.
    pub fn schema_sql(&self) -> Result<String, PostgresConfigError> {
        Ok(schema::full_sql(&self.names()?))
    }

    fn names(&self) -> Result<Names, PostgresConfigError> {
        if !check_identifier(&self.schema) {
            return Err(PostgresConfigError::Setting(
                "the schema name must be lower-case ASCII letters, digits and _ (at most 40)",
            ));
        }
        if !check_identifier(&self.table) {
            return Err(PostgresConfigError::Setting(
                "the table name must be lower-case ASCII letters, digits and _ (at most 40)",
            ));
        }
        Ok(Names {
            schema: self.schema.clone(),
            table: self.table.clone(),
        })
    }

    /// Builds the store without connecting: nothing is checked against the
    /// database, the schema is not touched and no sweeper runs. Use
    /// [`connect`](Self::connect) at start-up instead, unless you call
    /// [`PostgresStore::migrate`] yourself.
    ///
    /// # Errors
    /// [`PostgresConfigError`] for a malformed URL, a URL requiring TLS, an
    /// invalid name, or a zero pool size, timeout or batch.
    pub fn build(self) -> Result<PostgresStore, PostgresConfigError> {
        if self.pool_size == 0 {
            return Err(PostgresConfigError::Setting("pool_size must be at least 1"));
        }
        if self.sweep_batch == 0 {
            return Err(PostgresConfigError::Setting(
                "sweep_batch must be at least 1",
            ));
        }
        for (what, value) in [
            ("connect_timeout must not be zero", self.connect_timeout),
            ("wait_timeout must not be zero", self.wait_timeout),
            ("statement_timeout must not be zero", self.statement_timeout),
        ] {
            if value.is_zero() {
                return Err(PostgresConfigError::Setting(what));
            }
        }
        if self.sweep_interval.is_some_and(|i| i.is_zero()) {
            return Err(PostgresConfigError::Setting(
                "sweep_interval must not be zero (None turns the sweeper off)",
            ));
        }
        let names = self.names()?;
        let mut config =
            tokio_postgres::Config::from_str(&self.url).map_err(PostgresConfigError::Url)?;
        let require_tls = config.get_ssl_mode() == SslMode::Require;
        #[cfg(not(feature = "postgres-tls"))]
        if require_tls {
            return Err(PostgresConfigError::TlsUnsupported);
        }
        let target = target(&config);
        config.connect_timeout(self.connect_timeout);
        let timeout = format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        );
        let options = match config.get_options() {
            Some(given) => format!("{given} {timeout}"),
            None => timeout,
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("sessionkit");
        }
        let manager_config = ManagerConfig {
            // A closed connection is dropped on checkout; a live one is
            // handed out without a round trip.
            recycling_method: RecyclingMethod::Fast,
        };
        // TLS only when the URL requires it (`prefer` and `disable` connect
        // in the clear): a server certificate is then always verified.
        #[cfg(feature = "postgres-tls")]
        let manager = if require_tls {
            let tls = super::tls::connector(self.tls_root_certificate.as_deref())?;
            Manager::from_config(config, tls, manager_config)
        } else {
            Manager::from_config(config, NoTls, manager_config)
        };
        #[cfg(not(feature = "postgres-tls"))]
        let manager = Manager::from_config(config, NoTls, manager_config);
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .wait_timeout(Some(self.wait_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.statement_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PostgresConfigError::Pool(e.to_string()))?;
        // One operation: wait for a connection, maybe connect, run one
        // statement, and once more after a lost connection (loads).
        let operation_timeout = self.wait_timeout
            + 2 * (self.connect_timeout + self.statement_timeout)
            + Duration::from_millis(100);
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                statements: Statements::new(&names),
                names,
                target,
                statement_timeout: self.statement_timeout,
                operation_timeout,
                sweep_interval: self.sweep_interval,
                sweep_batch: i64::from(self.sweep_batch),
                migrate: self.migrate,
            }),
        })
    }

    /// Builds the store, creates or upgrades its schema (unless
    /// [`skip_migration`](Self::skip_migration)) and starts the sweeper
    /// (unless the interval is `None`). Call it at start-up, inside the
    /// Tokio runtime the application serves on.
    ///
    /// # Errors
    /// What [`build`](Self::build) returns, or
    /// [`PostgresConfigError::Migration`] when the database cannot be
    /// reached or refuses the schema.
    pub async fn connect(self) -> Result<PostgresStore, PostgresConfigError> {
        let store = self.build()?;
        if store.inner.migrate {
            store
                .migrate()
                .await
                .map_err(PostgresConfigError::Migration)?;
        }
        store.start_sweeper();
        Ok(store)
    }
}

/// `host:port[,host:port…]/database`, for messages: never the user or password.
fn target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!("{hosts}/{}", config.get_dbname().unwrap_or("postgres"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let b = || PostgresStoreBuilder::new("postgres://u:secret@127.0.0.1:5999/app".into());
        assert!(matches!(
            b().pool_size(0).build(),
            Err(PostgresConfigError::Setting(_))
        ));
        assert!(matches!(
            b().statement_timeout(Duration::ZERO).build(),
            Err(PostgresConfigError::Setting(_))
        ));
        assert!(matches!(
            b().table("Bad-Name").build(),
            Err(PostgresConfigError::Setting(_))
        ));
        assert!(matches!(
            b().sweep_interval(Some(Duration::ZERO)).build(),
            Err(PostgresConfigError::Setting(_))
        ));
        assert!(matches!(
            PostgresStoreBuilder::new("nonsense=::".into()).build(),
            Err(PostgresConfigError::Url(_))
        ));
        #[cfg(not(feature = "postgres-tls"))]
        assert!(matches!(
            PostgresStoreBuilder::new("postgres://127.0.0.1/app?sslmode=require".into()).build(),
            Err(PostgresConfigError::TlsUnsupported)
        ));
        #[cfg(feature = "postgres-tls")]
        assert!(matches!(
            PostgresStoreBuilder::new("postgres://127.0.0.1/app?sslmode=require".into())
                .tls_root_certificate(b"not a certificate".to_vec())
                .build(),
            Err(PostgresConfigError::Tls(_))
        ));
        assert!(!format!("{:?}", b()).contains("secret"));
        let store = b().build().expect("a store");
        let debug = format!("{store:?}");
        assert!(debug.contains("127.0.0.1:5999/app"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}

//! The PostgreSQL store (feature `postgres`); the guide is on
//! [`PostgresStore`], the tables and functions in `schema.rs`.
//!
//! # Design notes (for maintainers)
//!
//! - **One module per idea**: `config.rs` (the builder, the pool), `schema.rs`
//!   (the SQL, its versions, the migration under an advisory lock),
//!   `statements.rs` (statement texts, write arguments and row decoding: pure,
//!   unit-tested without a database), `error.rs` (SQLSTATE → [`StoreError`]
//!   with a hint), `sweep.rs` (the sweeper and its metrics), this file (the
//!   store contract on top).
//! - **A surrogate `sid` that survives rotations.** A rotation renames the
//!   session row (`handle` := hash of the new id) instead of copying fields,
//!   so it keeps concurrent changes to other fields and costs one row
//!   update. Everything that must still find a session after a concurrent
//!   rotation goes by `sid`: fields, tombstones, and the delete statement
//!   (its `sid IN (…)` still matches the renamed row when it waited for the
//!   rotation's lock, where `handle = $1` would not).
//! - **Writes are one plpgsql call** (`<table>_write`): in READ COMMITTED each
//!   statement inside takes a fresh snapshot, so after `FOR UPDATE` waited
//!   for a concurrent rotation the tombstone lookup sees it and answers
//!   `Moved`. Liveness is `expires_at > now()` on the database's clock; the
//!   runtime checks the timestamps in [`Meta`](crate::store::Meta) on its own.
//! - **The principal index is a column** (`principal`, partial index), exact
//!   and changed in the same transaction as the session: no index entries to
//!   prune. Revocation takes `pg_advisory_xact_lock(class, hashtext(px))`,
//!   rotations keeping the principal take it shared before locking their
//!   row, so no revoked session moves to an id the revocation did not see.
//!   Lock order is advisory lock, then row: no cycle.
//! - **Schema changes** are a new entry in `schema::MIGRATIONS` (never an edit
//!   of a released one) and `LATEST` bumped; `full_sql` is what
//!   [`PostgresStore::schema_sql`] hands to teams that migrate themselves.

mod config;
mod error;
mod schema;
mod statements;
mod sweep;
#[cfg(feature = "postgres-tls")]
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use self::config::PostgresStoreBuilder;
pub use self::error::PostgresConfigError;
pub use self::sweep::PostgresSweep;

use self::error::{connection_lost, pg_error, pool_error};
use self::schema::{Names, Plan};
use self::statements::{record, write_args, MetaColumns, Statements, Status, Unreadable};
use crate::forward::open_forward;
use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::{Record, FORMAT_VERSION};
use crate::store::{
    DynPrincipalIndex, Loaded, PrincipalIndex, SessionStore, StoreError, Write, Written,
};

/// Sessions in PostgreSQL, on a `deadpool-postgres` pool of
/// `tokio-postgres` connections.
///
/// Cheap to clone (the pool is shared). Build it at start-up with
/// [`PostgresStore::connect`] or [`PostgresStore::builder`]`(url).connect()`,
/// which creates or upgrades the tables and starts the sweeper of expired
/// sessions.
///
/// ```no_run
/// use std::time::Duration;
/// use sessionkit::PostgresStore;
///
/// # async fn start() -> Result<(), sessionkit::PostgresConfigError> {
/// // e.g. DATABASE_URL=postgres://app:secret@db.internal:5432/app
/// let url = std::env::var("DATABASE_URL")
///     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
/// let store = PostgresStore::builder(url)
///     .schema("sessions")
///     .pool_size(32)
///     .statement_timeout(Duration::from_millis(500))
///     .sweep_interval(Some(Duration::from_secs(300)))
///     .connect()
///     .await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
///
/// # Settings
///
/// | setting | default | builder method |
/// |---|---|---|
/// | schema | `public` | [`schema`](PostgresStoreBuilder::schema) |
/// | base table name | `sessionkit` | [`table`](PostgresStoreBuilder::table) |
/// | pool size | 16 | [`pool_size`](PostgresStoreBuilder::pool_size) |
/// | connect timeout | 1 s | [`connect_timeout`](PostgresStoreBuilder::connect_timeout) |
/// | wait for a pooled connection | 1 s | [`wait_timeout`](PostgresStoreBuilder::wait_timeout) |
/// | statement timeout (server and client) | 1 s | [`statement_timeout`](PostgresStoreBuilder::statement_timeout) |
/// | sweep interval | 60 s | [`sweep_interval`](PostgresStoreBuilder::sweep_interval) |
/// | rows per sweep statement | 1000 | [`sweep_batch`](PostgresStoreBuilder::sweep_batch) |
/// | create/upgrade the schema at start-up | yes | [`skip_migration`](PostgresStoreBuilder::skip_migration) |
///
/// URLs have the libpq form `postgres://user:password@host:port/database`
/// (or `host=… user=…`). TLS is not supported yet: a URL with
/// `sslmode=require` is refused.
///
/// # Layout
///
/// One row per session in the base table, one row per stored field in
/// `<table>_fields` (so a write touches only the fields it changes), one
/// row per rotation tombstone in `<table>_moves`. Sessions are keyed by
/// their [`SessionHandle`], base64url(SHA-256(id)); a tombstone keeps the
/// new id only sealed with the old one; the principal index is a column
/// holding base64url(SHA-256(principal)). So a dump of the database holds no
/// usable session token and no user id. [`PostgresStore::schema_sql`] gives
/// the whole schema, for teams that run their migrations themselves (then
/// call [`skip_migration`](PostgresStoreBuilder::skip_migration)).
///
/// # Round trips
///
/// | operation | sent to PostgreSQL |
/// |---|---|
/// | load | 1 statement (the session and its fields, or a tombstone) |
/// | save, rotate (conditional, with the principal index) | 1 call of the `<table>_write` function: lock the row, check it is live and the expected fields, apply |
/// | delete | 1 statement (the session, or the tombstone and the session it forwards to) |
/// | list a user's sessions | 1 statement |
/// | revoke | 1 call of the `<table>_revoke` function |
///
/// Statements are prepared once per connection and cached. A request that
/// does not touch its session sends nothing.
///
/// # Guarantees
///
/// The whole [store contract](crate::store): each write checks that its
/// session is live and that the expected fields hold what the request
/// loaded, and applies, in one transaction holding the session's row lock;
/// a rotation renames the row in place (keeping concurrent changes to other
/// fields) and leaves a tombstone for the grace period; the principal index
/// is exact, changed in the same transaction as the session; a revocation
/// and a rotation of the same principal's session are serialized by an
/// advisory lock, so no revoked session escapes to a new id.
///
/// # Expiry
///
/// Each write sets the row's `expires_at` from its TTL on the database's
/// clock (an update that does not change the metadata only extends it);
/// loads never return a row past it, and the runtime also checks the
/// session's timestamps on its own clock. The sweeper deletes expired rows
/// in batches by an index on `expires_at`.
///
/// # Faults
///
/// Every operation is bounded by the wait, connect and statement timeouts;
/// failures are [`StoreError::Unavailable`], [`StoreError::Timeout`] or
/// [`StoreError::Backend`] with what to check, so the runtime's timeout
/// and circuit breaker answer 503 fast. A connection the server closed
/// (restart, `pg_terminate_backend`) is dropped from the pool; a load or
/// delete that failed on it is retried once on another connection, a write
/// is not (it may have applied) and fails alone. When the database is back
/// the same store works again.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Pool,
    names: Names,
    statements: Statements,
    /// Where the store points, for messages (no credentials).
    target: String,
    statement_timeout: Duration,
    /// The bound on one whole operation, retry included.
    operation_timeout: Duration,
    sweep_interval: Option<Duration>,
    sweep_batch: i64,
    migrate: bool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target)
            .field("schema", &self.inner.names.schema)
            .field("table", &self.inner.names.table)
            .finish_non_exhaustive()
    }
}

/// Whether an operation may run again on another connection after its
/// connection was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A read, or an idempotent delete.
    Once,
    /// A write, which may have applied before the connection died.
    Never,
}

impl PostgresStore {
    /// A store with the default settings, connected: see
    /// [`PostgresStoreBuilder::connect`].
    ///
    /// # Errors
    /// [`PostgresConfigError`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, PostgresConfigError> {
        Self::builder(url).connect().await
    }

    /// A builder, from a URL such as `postgres://user:password@host:5432/db`.
    ///
    /// ```
    /// let builder = sessionkit::PostgresStore::builder("postgres://app@127.0.0.1/app")
    ///     .table("myapp_sessions");
    /// assert!(builder.schema_sql()?.contains("\"myapp_sessions_fields\""));
    /// # Ok::<(), sessionkit::PostgresConfigError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(url.into())
    }

    /// The whole schema as one idempotent SQL script (tables, indexes,
    /// functions, the version table and its rows), for teams that run
    /// their migrations themselves.
    ///
    /// ```
    /// let store = sessionkit::PostgresStore::builder("postgres://app@127.0.0.1/app").build()?;
    /// let sql = store.schema_sql();
    /// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"public\".\"sessionkit\""));
    /// # Ok::<(), sessionkit::PostgresConfigError>(())
    /// ```
    #[must_use]
    pub fn schema_sql(&self) -> String {
        schema::full_sql(&self.inner.names)
    }

    /// Creates or upgrades the schema, idempotently, under an advisory lock
    /// (several instances may start at once). [`PostgresStoreBuilder::connect`]
    /// calls it unless told to skip it.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or refuses a step.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let work = async {
            let mut client = inner
                .pool
                .get()
                .await
                .map_err(|e| pool_error(e, &inner.target, inner.statement_timeout))?;
            schema::migrate(&mut client, &inner.names)
                .await
                .map_err(|e| pg_error(e, &inner.target, inner.statement_timeout))
        };
        // DDL may wait for the lock of another instance's migration.
        let plan = tokio::time::timeout(inner.operation_timeout * 10, work)
            .await
            .map_err(|_| StoreError::Timeout(inner.operation_timeout * 10))??;
        match plan {
            Plan::Apply(versions) => {
                tracing::info!(?versions, "PostgresStore: schema migrated");
            }
            Plan::UpToDate => {}
            Plan::Newer(version) => tracing::warn!(
                version,
                known = schema::LATEST,
                "PostgresStore: the schema was migrated by a newer release of sessionkit; leaving it as it is"
            ),
        }
        Ok(())
    }

    /// The name of a session's row: its handle (never the id).
    ///
    /// ```
    /// let id = sessionkit::id::SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f")?;
    /// let key = sessionkit::PostgresStore::key_for(&id);
    /// assert_eq!(key.len(), 43);
    /// assert!(!key.contains(id.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn key_for(id: &SessionId) -> String {
        SessionHandle::of(id).as_str().to_owned()
    }

    async fn load_record(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        let handle = SessionHandle::of(id);
        let now = statements::big(now);
        let rows = self
            .inner
            .query(
                &self.inner.statements.load,
                &[&handle.as_str(), &now],
                Retry::Once,
            )
            .await?;
        // At most a session row and a tombstone row (a handle names one of
        // them: ids are fresh); a session wins.
        let session = rows
            .iter()
            .find(|r| !matches!(r.try_get::<_, Option<i32>>(0), Ok(None)));
        if let Some(row) = session {
            return Ok(match session_record(row, 0)? {
                Ok(record) => Loaded::Session(record),
                Err(why) => unreadable(why),
            });
        }
        let Some(row) = rows.first() else {
            return Ok(Loaded::Absent);
        };
        let forward: Option<String> = row.try_get(8).map_err(corrupt)?;
        Ok(forward
            .and_then(|f| open_forward(id, f.as_bytes()))
            .map_or(Loaded::Absent, Loaded::Moved))
    }

    async fn write_record(&self, write: &Write) -> Result<Written, StoreError> {
        let a = write_args(write);
        let params: [&(dyn ToSql + Sync); 21] = [
            &a.mode,
            &a.handle,
            &a.now,
            &a.ttl_ms,
            &a.meta_changed,
            &a.version,
            &a.created,
            &a.issued,
            &a.access,
            &a.idle,
            &a.deadline,
            &a.set_names,
            &ByteArray(&a.set_values),
            &a.remove,
            &a.expect_names,
            &OptionByteArray(&a.expect_values),
            &a.to,
            &a.forward,
            &a.grace_ms,
            &a.principal,
            &a.px,
        ];
        let rows = self
            .inner
            .query(&self.inner.statements.write, &params, Retry::Never)
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("the write function returned no row".into()))?;
        let code: i32 = row.try_get(0).map_err(corrupt)?;
        match Status::from_code(code) {
            Some(Status::Done) => Ok(Written::Done),
            Some(Status::Gone) => Ok(Written::Gone),
            Some(Status::Moved) => {
                let forward: Option<String> = row.try_get(1).map_err(corrupt)?;
                Ok(forward
                    .and_then(|f| open_forward(&write.id, f.as_bytes()))
                    .map_or(Written::Gone, Written::Moved))
            }
            Some(Status::Conflict) => match session_record(row, 2)? {
                Ok(record) => Ok(Written::Conflict(record)),
                // Not a session this release can read: as if it were gone.
                Err(_) => Ok(Written::Gone),
            },
            None => Err(StoreError::Corrupt(format!(
                "the write function returned status {code}; is the schema from another release?"
            ))),
        }
    }
}

impl Inner {
    /// Runs one prepared statement (cached per connection) and returns its
    /// rows, bounded by the operation timeout; after a lost connection,
    /// once more on another when `retry` allows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        retry: Retry,
    ) -> Result<Vec<Row>, StoreError> {
        let work = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let client = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| pool_error(e, &self.target, self.statement_timeout))?;
                let result = match client.prepare_cached(sql).await {
                    Ok(statement) => client.query(&statement, params).await,
                    Err(error) => Err(error),
                };
                match result {
                    Ok(rows) => return Ok(rows),
                    Err(error) => {
                        if connection_lost(&error) && retry == Retry::Once && attempt == 1 {
                            tracing::debug!("PostgreSQL connection was lost; retrying on another");
                            // Out of the pool for good: its task may not
                            // have seen the close yet, so the pool's check
                            // could hand the same dead connection back.
                            drop(deadpool_postgres::Object::take(client));
                            continue;
                        }
                        return Err(pg_error(error, &self.target, self.statement_timeout));
                    }
                }
            }
        };
        match tokio::time::timeout(self.operation_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.operation_timeout)),
        }
    }

    /// Runs one prepared statement and returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let work = async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| pool_error(e, &self.target, self.statement_timeout))?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| pg_error(e, &self.target, self.statement_timeout))?;
            client
                .execute(&statement, params)
                .await
                .map_err(|e| pg_error(e, &self.target, self.statement_timeout))
        };
        match tokio::time::timeout(self.operation_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.operation_timeout)),
        }
    }
}

/// `bytea[]` from `Bytes` values without copying them into `Vec`s.
#[derive(Debug)]
struct ByteArray<'a>(&'a [bytes::Bytes]);

/// `bytea[]` with nulls (absent fields) from optional `Bytes` values.
#[derive(Debug)]
struct OptionByteArray<'a>(&'a [Option<bytes::Bytes>]);

impl ToSql for ByteArray<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let slices: Vec<&[u8]> = self.0.iter().map(|b| &b[..]).collect();
        slices.to_sql(ty, out)
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <Vec<&[u8]> as ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

impl ToSql for OptionByteArray<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let slices: Vec<Option<&[u8]>> = self.0.iter().map(|b| b.as_deref()).collect();
        slices.to_sql(ty, out)
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <Vec<Option<&[u8]>> as ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

/// The session in `row` from column `at` on: the six meta columns, then
/// the field names and values (two arrays).
fn session_record(row: &Row, at: usize) -> Result<Result<Record, Unreadable>, StoreError> {
    let get = || -> Result<_, tokio_postgres::Error> {
        let columns = MetaColumns {
            version: row.try_get(at)?,
            created: row.try_get(at + 1)?,
            issued: row.try_get(at + 2)?,
            access: row.try_get(at + 3)?,
            idle: row.try_get(at + 4)?,
            deadline: row.try_get(at + 5)?,
        };
        let names: Vec<String> = row.try_get(at + 6)?;
        let values: Vec<Vec<u8>> = row.try_get(at + 7)?;
        Ok((columns, names, values))
    };
    let (columns, names, values) = get().map_err(corrupt)?;
    if names.len() != values.len() {
        return Err(StoreError::Corrupt(
            "a session's field names and values differ in number".into(),
        ));
    }
    Ok(record(columns, names.into_iter().zip(values)))
}

fn corrupt(error: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(format!(
        "unexpected columns from the session tables: {error}"
    ))
}

/// A stored session this release cannot serve: absent (it expires by
/// itself and the sweeper deletes it).
fn unreadable(why: Unreadable) -> Loaded {
    match why {
        Unreadable::Version(version) => tracing::warn!(
            stored_version = version,
            expected = FORMAT_VERSION,
            "a stored session was written in another format version; treating it as absent (it expires by itself)"
        ),
        Unreadable::Corrupt(reason) => tracing::warn!(
            reason,
            "a stored session is unreadable; treating it as absent (it expires by itself)"
        ),
    }
    Loaded::Absent
}

impl SessionStore for PostgresStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.load_record(id, now).await
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.write_record(write).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let handle = SessionHandle::of(id);
        self.inner
            .query(
                &self.inner.statements.delete,
                &[&handle.as_str()],
                Retry::Once,
            )
            .await
            .map(drop)
    }

    fn label(&self) -> &'static str {
        "postgres"
    }

    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        Some(self)
    }
}

impl PrincipalIndex for PostgresStore {
    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        let px = principal.hashed();
        let rows = self
            .inner
            .query(&self.inner.statements.list, &[&px], Retry::Once)
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let handle: String = row.try_get(0).map_err(corrupt)?;
            let Ok(handle) = SessionHandle::parse(&handle) else {
                continue;
            };
            // Unreadable, or expired by its own timestamps: never listed.
            if let Ok(record) = session_record(row, 1)? {
                if !record.meta.is_expired(now) {
                    found.push((handle, record));
                }
            }
        }
        Ok(found)
    }

    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        let px = principal.hashed();
        let (take, handles) = statements::take_args(take);
        let now = statements::big(now);
        let rows = self
            .inner
            .query(
                &self.inner.statements.revoke,
                &[&px, &take, &handles, &now],
                Retry::Never,
            )
            .await?;
        let count: i32 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("the revoke function returned no row".into()))?
            .try_get(0)
            .map_err(corrupt)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

//! sessionkit's `PostgresStore` at scale, without HTTP: bytes per session
//! on disk and the time of one sweep.
//!
//! `cargo run --release --manifest-path session-bench/Cargo.toml --bin bench-postgres-disk`
//!
//! Starts its own PostgreSQL (see [`session_bench::postgres`]), writes
//! `SESSIONS` sessions (default 1,000,000) through the store as the runtime
//! creates them (one field, `visits`), `EXPIRED` of them (default 100,000)
//! with a TTL of 1 ms; then `VACUUM`s and reports `pg_total_relation_size`
//! of the store's tables (heap, indexes, TOAST, maps) per stored session,
//! and finally times one `PostgresStore::sweep` (batches of
//! `SWEEP_BATCH` rows, default the store's 1000), which must delete exactly
//! the expired sessions. Prints a markdown table.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use session_bench::postgres::PostgresServer;
use sessionkit::id::SessionId;
use sessionkit::store::{Meta, SessionStore, Write, WriteKind, Written};
use sessionkit::PostgresStore;

/// Writes in flight at once.
const IN_FLIGHT: usize = 256;
/// The store's tables (default names).
const TABLES: [&str; 3] = ["sessionkit", "sessionkit_fields", "sessionkit_moves"];

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={text:?} is not a number")),
        _ => Ok(default),
    }
}

fn now_ms() -> Result<u64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    u64::try_from(since.as_millis()).context("the clock is far in the future")
}

/// Session `index` as the runtime creates it: `visits` = 0 (MessagePack
/// `0x00`), living `ttl_ms`.
fn create(index: u64, ttl_ms: u64) -> Result<Write> {
    let now = now_ms()?;
    Ok(Write {
        id: SessionId::parse(&session_bench::scale::sessionkit_id(index))
            .context("a preload id is not a valid session id")?,
        kind: WriteKind::Create,
        now,
        meta: Meta::new(now, ttl_ms, None),
        meta_changed: true,
        ttl_ms,
        set: vec![("visits", vec![0u8].into())],
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    })
}

fn main() -> Result<()> {
    let sessions = env_u64("SESSIONS", 1_000_000)?;
    let expired = env_u64("EXPIRED", 100_000)?;
    let batch = env_u64("SWEEP_BATCH", 1_000)?;
    ensure!(expired <= sessions, "EXPIRED must be at most SESSIONS");
    let cpus = std::env::var("POSTGRES_CPU").unwrap_or_else(|_| "0-1".to_owned());
    let server = PostgresServer::start(&cpus)?;
    server.recreate_database("bench")?;
    let url = server.url("bench");
    eprintln!("bench-postgres-disk: {} on {url}", server.version());

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?
        .block_on(run(&server, &url, sessions, expired, batch))
}

async fn run(
    server: &PostgresServer,
    url: &str,
    sessions: u64,
    expired: u64,
    batch: u64,
) -> Result<()> {
    let store = PostgresStore::builder(url)
        .pool_size(16)
        .sweep_interval(None)
        .sweep_batch(u32::try_from(batch).context("SWEEP_BATCH is too large")?)
        .statement_timeout(Duration::from_secs(30))
        .connect()
        .await
        .context("connecting the store")?;

    // Every tenth session (up to EXPIRED of them) lives 1 ms; the rest a day.
    let every = sessions.checked_div(expired).unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut short = 0;
    for index in 0..sessions {
        if tasks.len() >= IN_FLIGHT {
            if let Some(done) = tasks.join_next().await {
                done.context("a write task panicked")??;
            }
        }
        let ttl = if index % every == 0 && short < expired {
            short += 1;
            1
        } else {
            24 * 3600 * 1000
        };
        let write = create(index, ttl)?;
        let store = store.clone();
        tasks.spawn(async move {
            match store.write(&write).await {
                Ok(Written::Done) => Ok(()),
                Ok(other) => anyhow::bail!("session {index}: the create answered {other:?}"),
                Err(error) => Err(error).with_context(|| format!("writing session {index}")),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a write task panicked")??;
    }
    let wrote = started.elapsed();
    ensure!(
        short == expired,
        "only {short} short-lived sessions written"
    );
    eprintln!(
        "bench-postgres-disk: wrote {sessions} sessions in {:.1} s ({:.0}/s)",
        wrote.as_secs_f64(),
        sessions as f64 / wrote.as_secs_f64()
    );

    server.psql_in("bench", "VACUUM")?;
    let sizes = server.psql_in(
        "bench",
        &format!(
            "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid), \
             pg_total_relation_size(c.oid), c.reltuples::bigint FROM pg_class c \
             WHERE c.relname IN ({}) ORDER BY c.relname",
            TABLES
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )?;
    let rows: u64 = server
        .psql_in("bench", "SELECT count(*) FROM sessionkit")?
        .parse()
        .context("count(*)")?;
    ensure!(rows == sessions, "{rows} rows for {sessions} sessions");

    let mut out = String::new();
    out.push_str(&format!(
        "On disk after writing {sessions} sessions (`VACUUM`ed):\n\n\
         | table | heap + TOAST bytes | index bytes | total bytes | total ÷ sessions |\n\
         |---|---|---|---|---|\n"
    ));
    let mut total = 0u64;
    for line in sizes.lines() {
        let parts: Vec<&str> = line.split('|').collect();
        ensure!(parts.len() == 5, "unexpected size row {line:?}");
        let table_bytes: u64 = parts[1].parse().context("pg_table_size")?;
        let index_bytes: u64 = parts[2].parse().context("pg_indexes_size")?;
        let all: u64 = parts[3].parse().context("pg_total_relation_size")?;
        total += all;
        out.push_str(&format!(
            "| {} | {table_bytes} | {index_bytes} | {all} | {:.1} |\n",
            parts[0],
            all as f64 / sessions as f64
        ));
    }
    out.push_str(&format!(
        "| **all** | | | {total} | **{:.1}** |\n\n",
        total as f64 / sessions as f64
    ));

    // The short-lived sessions are past their 1 ms by now.
    let started = Instant::now();
    let sweep = store.sweep().await.context("sweeping")?;
    let took = started.elapsed();
    ensure!(
        sweep.sessions == expired,
        "the sweep deleted {} sessions, expected {expired}",
        sweep.sessions
    );
    let left: u64 = server
        .psql_in("bench", "SELECT count(*) FROM sessionkit")?
        .parse()
        .context("count(*)")?;
    ensure!(
        left == sessions - expired,
        "{left} rows left after the sweep"
    );
    out.push_str(&format!(
        "One sweep of {sessions} sessions, {expired} of them expired: deleted {} sessions in \
         {} statements of at most {batch} rows, **{:.2} s** ({:.1} µs per deleted session); \
         {left} sessions left.\n",
        sweep.sessions,
        sweep.batches,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / expired.max(1) as f64,
    ));
    println!("{out}");
    Ok(())
}

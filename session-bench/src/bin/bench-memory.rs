//! Bytes per session held by an in-memory session store, at 1M sessions.
//!
//! `bench-memory` runs one child process per store (`bench-memory <store> <n>`),
//! so the stores never share a heap, and prints a markdown table. Each child
//! stores `n` copies of the same typical gateway session under fresh ids and
//! reports the growth of
//!
//! * the bytes currently allocated, from a counting global allocator (what the
//!   program asked for, without malloc's own headers and rounding), and
//! * the resident set size (`VmRSS` in `/proc/self/status`), which does include
//!   them, for reference.
//!
//! Stores: `sessionkit` (`sessionkit::MemoryStore`, the gateway struct's 5
//! fields packed as MessagePack), `tower-sessions` (0.15's `MemoryStore`, the
//! same keys and values as `serde_json::Value`s in its record), and `hashmap`
//! (a plain `HashMap<SessionId, (Meta, Box<[u8]>)>` holding the same packed
//! bytes as sessionkit: what the data costs without any cache machinery), and
//! `moka-floor` (a `moka` cache, which sessionkit's memory store was built
//! on before its own sharded table, holding the same ids with an empty
//! value, per-entry expiry and an eviction listener: what moka's bookkeeping
//! and the id alone cost).
//!
//! Settings: `SESSIONS` (default 1000000).

use std::alloc::System;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cap::Cap;
use session_bench::fixture::{
    encoded_fields, encoded_size, full_save, now_ms, Gateway, IDLE_TIMEOUT_MS,
};
use sessionkit::id::{IdGenerator, SessionId, UuidV4};
use sessionkit::store::Meta;
use sessionkit::store::SessionStore as _;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore as _;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const DEFAULT_SESSIONS: usize = 1_000_000;
const STORES: [&str; 4] = ["sessionkit", "tower-sessions", "hashmap", "moka-floor"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => parent(),
        [store, sessions] => {
            let sessions: usize = sessions.parse().context("the session count")?;
            let measured = child(store, sessions)?;
            println!("{}", measured.to_line());
            Ok(())
        }
        _ => bail!("usage: bench-memory            (all stores, SESSIONS=1000000)\n       bench-memory <store> <n>  (one store: {STORES:?})"),
    }
}

/// What one child measured.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    store: String,
    sessions: usize,
    allocated_bytes: u64,
    rss_bytes: u64,
    fill: Duration,
}

impl Measured {
    fn to_line(&self) -> String {
        format!(
            "RESULT store={} sessions={} allocated={} rss={} fill_ms={}",
            self.store,
            self.sessions,
            self.allocated_bytes,
            self.rss_bytes,
            self.fill.as_millis()
        )
    }

    fn from_output(stdout: &str) -> Result<Measured> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .context("no RESULT line in the child's output")?;
        let field = |key: &str| -> Result<&str> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .with_context(|| format!("no {key}= in {line:?}"))
        };
        let number = |key: &str| -> Result<u64> {
            field(key)?
                .parse()
                .with_context(|| format!("{key} in {line:?}"))
        };
        Ok(Measured {
            store: field("store")?.to_owned(),
            sessions: usize::try_from(number("sessions")?)?,
            allocated_bytes: number("allocated")?,
            rss_bytes: number("rss")?,
            fill: Duration::from_millis(number("fill_ms")?),
        })
    }

    fn per_session(&self, bytes: u64) -> f64 {
        bytes as f64 / self.sessions.max(1) as f64
    }
}

fn parent() -> Result<()> {
    let sessions = match std::env::var("SESSIONS") {
        Ok(text) => text.parse().context("SESSIONS")?,
        Err(_) => DEFAULT_SESSIONS,
    };
    let exe = std::env::current_exe().context("locating bench-memory")?;
    let mut results = Vec::new();
    for store in STORES {
        eprintln!("bench-memory: {store}, {sessions} sessions");
        let output = Command::new(&exe)
            .arg(store)
            .arg(sessions.to_string())
            .output()
            .with_context(|| format!("running bench-memory {store}"))?;
        if !output.status.success() {
            bail!(
                "bench-memory {store} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        results.push(Measured::from_output(&String::from_utf8_lossy(
            &output.stdout,
        ))?);
    }
    print!("{}", render(&results, encoded_size(&Gateway::typical())));
    Ok(())
}

fn render(results: &[Measured], encoded: usize) -> String {
    let mut out = String::new();
    let sessions = results.first().map_or(0, |m| m.sessions);
    out.push_str(&format!(
        "Encoded session size (sessionkit: field names + MessagePack values, what `maxSessionBytes` counts): **{encoded} bytes**; target for `MemoryStore`: at most 2× that, {} bytes per session.\n\n",
        2 * encoded
    ));
    out.push_str(&format!(
        "| store ({} sessions) | bytes/session (allocator) | × encoded size | RSS delta/session | fill time |\n",
        group_digits(sessions as u64)
    ));
    out.push_str("|---|---|---|---|---|\n");
    for m in results {
        let allocated = m.per_session(m.allocated_bytes);
        out.push_str(&format!(
            "| {} | {allocated:.0} | {:.2} | {:.0} | {:.1} s |\n",
            describe(&m.store),
            allocated / encoded.max(1) as f64,
            m.per_session(m.rss_bytes),
            m.fill.as_secs_f64()
        ));
    }
    out
}

fn describe(store: &str) -> String {
    match store {
        "sessionkit" => "sessionkit `MemoryStore`".to_owned(),
        "tower-sessions" => "tower-sessions 0.15 `MemoryStore`".to_owned(),
        "hashmap" => {
            "baseline: `HashMap<SessionId, (Meta, Box<[u8]>)>`, same packed bytes".to_owned()
        }
        "moka-floor" => {
            "floor of a moka cache: `SessionId` → `()`, per-entry expiry, listener".to_owned()
        }
        other => other.to_owned(),
    }
}

fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Fills one store in this process and measures what it holds.
fn child(store: &str, sessions: usize) -> Result<Measured> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("building a current-thread runtime")?;
    let (allocated, rss, fill) = match store {
        "sessionkit" => runtime.block_on(fill_sessionkit(sessions))?,
        "tower-sessions" => runtime.block_on(fill_tower(sessions))?,
        "hashmap" => fill_hashmap(sessions)?,
        "moka-floor" => fill_moka_floor(sessions)?,
        other => bail!("unknown store {other:?}; one of {STORES:?}"),
    };
    Ok(Measured {
        store: store.to_owned(),
        sessions,
        allocated_bytes: allocated,
        rss_bytes: rss,
        fill,
    })
}

/// Allocated bytes and RSS now, in bytes.
fn snapshot() -> Result<(u64, u64)> {
    Ok((ALLOCATOR.allocated() as u64, rss_bytes()?))
}

/// Growth of (allocated, RSS) from `before` to now, and the fill time.
fn growth(before: (u64, u64), started: Instant) -> Result<(u64, u64, Duration)> {
    let fill = started.elapsed();
    let after = snapshot()?;
    Ok((
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
        fill,
    ))
}

fn rss_bytes() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmRSS in /proc/self/status")?
        .parse()
        .context("VmRSS")?;
    Ok(kb * 1024)
}

async fn fill_sessionkit(sessions: usize) -> Result<(u64, u64, Duration)> {
    let store = sessionkit::MemoryStore::new();
    let mut write = full_save(&Gateway::typical(), now_ms());
    let before = snapshot()?;
    let started = Instant::now();
    for _ in 0..sessions {
        write.id = UuidV4.generate().context("generating a session id")?;
        store.write(&write).await.context("MemoryStore::write")?;
    }
    // Settle the store (a sweep; nothing is expired yet).
    store.sweep();
    let measured = growth(before, started)?;
    if store.len() != sessions as u64 {
        bail!("sessionkit holds {} sessions, not {sessions}", store.len());
    }
    drop(store);
    Ok(measured)
}

async fn fill_tower(sessions: usize) -> Result<(u64, u64, Duration)> {
    let store = tower_sessions::MemoryStore::default();
    // The same keys and values, as tower-sessions' `Session::insert` would
    // serialize them (`serde_json::to_value`).
    let serde_json::Value::Object(map) =
        serde_json::to_value(Gateway::typical()).context("serializing the gateway session")?
    else {
        bail!("a struct serializes to a JSON object");
    };
    let template = Record {
        id: Id::default(),
        data: map.into_iter().collect::<HashMap<_, _>>(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
    };
    let before = snapshot()?;
    let started = Instant::now();
    for _ in 0..sessions {
        let mut record = template.clone();
        record.id = Id::default();
        store
            .create(&mut record)
            .await
            .context("tower-sessions MemoryStore::create")?;
    }
    let measured = growth(before, started)?;
    drop(store);
    Ok(measured)
}

fn fill_hashmap(sessions: usize) -> Result<(u64, u64, Duration)> {
    // sessionkit's packed layout: per field a u16 name length, the name, a
    // u32 value length, the value.
    let packed_len: usize = encoded_fields(&Gateway::typical())
        .iter()
        .map(|(name, value)| 2 + name.len() + 4 + value.len())
        .sum();
    let meta = Meta::new(now_ms(), IDLE_TIMEOUT_MS, None);
    let mut map: HashMap<SessionId, (Meta, Box<[u8]>)> = HashMap::new();
    let before = snapshot()?;
    let started = Instant::now();
    for _ in 0..sessions {
        let id = UuidV4.generate().context("generating a session id")?;
        map.insert(id, (meta, vec![0u8; packed_len].into_boxed_slice()));
    }
    let measured = growth(before, started)?;
    drop(map);
    Ok(measured)
}

/// A fixed TTL for every entry, as a per-entry expiry policy (which is what
/// makes moka keep its timer wheel nodes).
struct FixedTtl;

impl moka::Expiry<SessionId, ()> for FixedTtl {
    fn expire_after_create(&self, _: &SessionId, _: &(), _: Instant) -> Option<Duration> {
        Some(Duration::from_millis(IDLE_TIMEOUT_MS))
    }
}

fn fill_moka_floor(sessions: usize) -> Result<(u64, u64, Duration)> {
    let cache: moka::sync::Cache<SessionId, ()> = moka::sync::Cache::builder()
        .expire_after(FixedTtl)
        .eviction_listener(|_, _, _| {})
        .build();
    let before = snapshot()?;
    let started = Instant::now();
    for _ in 0..sessions {
        cache.insert(UuidV4.generate().context("generating a session id")?, ());
    }
    cache.run_pending_tasks();
    let measured = growth(before, started)?;
    if cache.entry_count() != sessions as u64 {
        bail!("moka holds {} entries, not {sessions}", cache.entry_count());
    }
    drop(cache);
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let m = Measured {
            store: "sessionkit".to_owned(),
            sessions: 1000,
            allocated_bytes: 123_456,
            rss_bytes: 200_000,
            fill: Duration::from_millis(42),
        };
        assert_eq!(
            Measured::from_output(&format!("noise\n{}\n", m.to_line())).unwrap(),
            m
        );
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(1_000_000), "1,000,000");
        assert_eq!(group_digits(999), "999");
    }

    #[test]
    fn a_small_fill_measures_something() {
        let m = child("sessionkit", 1000).unwrap();
        assert!(m.allocated_bytes > 1000 * 85, "{m:?}");
    }
}

//! How stale the Redis read cache can be across instances: run with
//! `cargo run --release -p sessionkit-examples --example read_cache_delay`
//! (starts its own `redis-server` on loopback, which must be on PATH; a few
//! seconds).
//!
//! Two stores on one Redis: instance A with the read cache
//! (`RedisStoreBuilder::read_cache`), instance B without. For each sample A
//! loads a session twice (the second load is a hit), then B writes to it;
//! the delay is the time from B's write being acknowledged to A's cache
//! having applied Redis' invalidation (A's `invalidations` counter moving,
//! watched by a task that does nothing else), and also from the moment B
//! sent the write. A delay of 0 means the invalidation was applied before
//! B's acknowledgement was. Then the load latency, cached hit against a
//! load without the cache. Printed as a Markdown table (p50, p90, p99,
//! max); the figures of `session-bench/results/read-cache.md`.

use std::time::{Duration, Instant};

use sessionkit::id::SessionId;
use sessionkit::store::{Loaded, Meta, SessionStore, Write, WriteKind, Written};
use sessionkit::RedisStore;
use sessionkit_tests::redis_server::{read_cache_ready, RedisServer};

const SAMPLES: usize = 2_000;

fn write(id: &SessionId, kind: WriteKind, now: u64, value: u32) -> Write {
    Write {
        id: id.clone(),
        kind,
        now,
        meta: Meta::new(now, 600_000, None),
        meta_changed: true,
        ttl_ms: 600_000,
        set: vec![("n", value.to_string().into_bytes().into())],
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    }
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// p50, p90, p99 and max of `samples`, in µs.
fn row(name: &str, samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let a = RedisStore::builder(server.url())
        .read_cache(10_000)
        .build()
        .expect("store");
    let b = RedisStore::from_url(server.url()).expect("store");
    read_cache_ready(&a).await;

    let mut after_ack = Vec::with_capacity(SAMPLES);
    let mut after_send = Vec::with_capacity(SAMPLES);
    let id = SessionId::parse("read-cache-delay-session").expect("id");
    let t = now_ms();
    let created = b
        .write(&write(&id, WriteKind::Create, t, 0))
        .await
        .expect("create");
    assert_eq!(created, Written::Done);
    for n in 1..=SAMPLES {
        a.load(&id, t).await.expect("load");
        let before = a.read_cache_stats().expect("cache");
        a.load(&id, t).await.expect("load");
        let cached = a.read_cache_stats().expect("cache");
        assert_eq!(cached.hits, before.hits + 1, "the second load is a hit");
        let seen = cached.invalidations;
        // Watch A's cache from a task of its own.
        let watched = a.clone();
        let watcher = tokio::spawn(async move {
            loop {
                if watched.read_cache_stats().expect("cache").invalidations > seen {
                    return Instant::now();
                }
                tokio::task::yield_now().await;
            }
        });
        let sent = Instant::now();
        let value = u32::try_from(n).unwrap_or(u32::MAX);
        let written = b
            .write(&write(&id, WriteKind::Update, t, value))
            .await
            .expect("write");
        let acked = Instant::now();
        assert_eq!(written, Written::Done);
        let invalidated = watcher.await.expect("watcher");
        after_ack.push(invalidated.saturating_duration_since(acked));
        after_send.push(invalidated.saturating_duration_since(sent));
        match a.load(&id, t).await.expect("load") {
            Loaded::Session(record) => assert_eq!(
                record.fields.get("n").map(|v| v.to_vec()),
                Some(value.to_string().into_bytes()),
                "A sees B's write once invalidated"
            ),
            other => panic!("expected the session, got {other:?}"),
        }
    }

    let mut hit = Vec::with_capacity(SAMPLES);
    let mut plain = Vec::with_capacity(SAMPLES);
    a.load(&id, t).await.expect("load");
    for _ in 0..SAMPLES {
        let start = Instant::now();
        a.load(&id, t).await.expect("load");
        hit.push(start.elapsed());
        let start = Instant::now();
        b.load(&id, t).await.expect("load");
        plain.push(start.elapsed());
    }
    let stats = a.read_cache_stats().expect("cache");
    assert!(stats.hits >= 2 * SAMPLES as u64, "{stats:?}");

    println!("| measured (µs) | samples | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    println!(
        "{}",
        row(
            "invalidation delay: B's write acknowledged → A's entry invalidated",
            &mut after_ack
        )
    );
    println!(
        "{}",
        row(
            "invalidation delay: B's write sent → A's entry invalidated",
            &mut after_send
        )
    );
    println!("{}", row("load, read cache hit (A)", &mut hit));
    println!(
        "{}",
        row("load without the cache (B, one HGETALL)", &mut plain)
    );
}

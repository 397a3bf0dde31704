//! `bench-cycles ROUTE [N] [REDIS_URL]`: N request cycles of sessionkit
//! without HTTP, for an instruction profile that does not depend on how busy
//! the machine is:
//!
//! ```text
//! cargo build --release --manifest-path session-bench/Cargo.toml --bin bench-cycles
//! valgrind --tool=callgrind session-bench/target/release/bench-cycles counter 20000
//! valgrind --tool=callgrind session-bench/target/release/bench-cycles counter 0   # set-up only
//! ```
//!
//! (instructions of the first run − those of the second) ÷ N = instructions
//! per request. ROUTE is `counter` (load, increment `visits`, commit),
//! `read` (load, read `visits`, commit) or `plain` (the id is captured, the
//! session never used), the routes of `bench-server`. Each cycle is what an
//! adapter runs: `begin`, `load` from a request carrying a
//! `Cookie: session_id=...` header, the handler's field access, `finish`.
//! 32 stored sessions of [`Gateway::typical`] are used in turn. With a
//! `REDIS_URL` the sessions live in that Redis (a server of your own: the
//! keys use the prefix `bench-cycles:`); otherwise in a `MemoryStore`.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use session_bench::fixture::{CookieRequest, Gateway, GatewaySessionExt as _};
use sessionkit::store::DynSessionStore;
use sessionkit::{MemoryStore, RedisStore, SessionManager};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let route = args.next().unwrap_or_else(|| "counter".to_owned());
    if !matches!(route.as_str(), "counter" | "read" | "plain") {
        bail!("ROUTE is counter, read or plain, not {route:?}");
    }
    let cycles: usize = match args.next() {
        Some(n) => n.parse().context("N must be a number of request cycles")?,
        None => 20_000,
    };
    let store: Arc<dyn DynSessionStore> = match args.next() {
        Some(url) => Arc::new(
            RedisStore::builder(url.as_str())
                .prefix("bench-cycles:")
                .build()
                .context("REDIS_URL")?,
        ),
        None => Arc::new(MemoryStore::new()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let manager = SessionManager::<Gateway>::new(store);
    let requests = rt.block_on(async {
        let mut requests = Vec::new();
        for _ in 0..32 {
            let session = manager.create()?;
            session.replace(Gateway::typical());
            session.save().await?;
            requests.push(CookieRequest(format!("session_id={}", session.id())));
        }
        Ok::<_, sessionkit::SessionError>(requests)
    })?;
    rt.block_on(async {
        for request in requests.iter().cycle().take(cycles) {
            let pending = manager.begin();
            match route.as_str() {
                "plain" => {
                    pending.capture(request);
                }
                "read" => {
                    let session = pending.load(request).await?;
                    std::hint::black_box(session.visits());
                }
                _ => {
                    let session = pending.load(request).await?;
                    session.update_visits(|visits| *visits += 1);
                }
            }
            std::hint::black_box(pending.finish(false).await?);
        }
        Ok::<_, sessionkit::SessionError>(())
    })?;
    Ok(())
}

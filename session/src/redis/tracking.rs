//! The read cache's I/O: one RESP3 connection with `CLIENT TRACKING ON`,
//! on which every cached read is sent, so Redis pushes an `invalidate`
//! message on that same connection whenever any client changes, deletes,
//! expires or evicts a key this cache read. The decisions are `cache.rs`'s.
//!
//! - **Pushes are handled inline.** redis-rs hands each push to the
//!   connection's push sender while it reads the socket, before it resolves
//!   the replies behind it; the sender here updates the cache at once. So a
//!   `PING` sent on the tracking connection after a write's reply is
//!   answered only after every invalidation that write caused was applied
//!   ([`Tracking::fence`]).
//! - **A supervisor task** (spawned on the first load) connects, turns
//!   tracking on, marks the cache up, then sends a `PING` every
//!   [`HEARTBEAT`] (a silent network failure is noticed within one
//!   heartbeat and one command timeout). When the connection drops (redis-rs
//!   pushes a disconnection), a command on it fails, or a heartbeat fails,
//!   the cache is flushed and bypassed, and the supervisor reconnects with a
//!   bounded backoff ([`backoff`]). It holds no strong reference to the
//!   store: it ends when the store is dropped (or with its runtime, which
//!   also turns the cache off until a later load spawns it again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection, PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::cache::{backoff, Cache, Lookup, Ticket};
use super::codec::Stored;

/// How often the supervisor checks the tracking connection with a `PING`.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

type Link = MultiplexedConnection;

/// The read cache of one store: owned by the store, shared with the
/// supervisor task and the connection's push sender through `Weak`s.
pub(crate) struct Tracking {
    shared: Arc<Shared>,
}

struct Shared {
    cache: Mutex<Cache<Link>>,
    /// Wakes the supervisor: the connection was lost, or the store dropped.
    wake: Arc<Notify>,
    /// A client of the store's node that speaks RESP3.
    client: redis::Client,
    /// Connect and response timeouts (the push sender is added per
    /// connection).
    config: redis::AsyncConnectionConfig,
    generation: AtomicU64,
    /// Whether a supervisor task is alive.
    supervised: AtomicBool,
}

/// What a load does: served, or a read to send on the tracking connection
/// (whose reply it then offers to the cache), or through the pool.
pub(crate) enum Cached<'a> {
    Hit(Stored),
    Read(Read<'a>),
    Bypass,
}

/// A cached read in flight. Dropped without [`Read::keep`] (failed or
/// cancelled), it keeps nothing.
pub(crate) struct Read<'a> {
    tracking: &'a Tracking,
    ticket: Option<Ticket>,
    link: Link,
}

impl Read<'_> {
    /// `HGETALL key` on the tracking connection. A failure that breaks the
    /// connection also turns the cache off (the caller reads through the
    /// pool instead).
    pub(crate) async fn hgetall(&mut self, key: &str) -> redis::RedisResult<Value> {
        let reply = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.link)
            .await;
        if let (Err(error), Some(ticket)) = (&reply, &self.ticket) {
            if super::pool::breaks_connection(error) {
                self.tracking.shared.lost(ticket.generation());
            }
        }
        reply
    }

    /// Offers what the key held to the cache, which keeps it unless the key
    /// was invalidated (or the connection changed) since the read was sent.
    pub(crate) fn keep(mut self, stored: &Stored) {
        if let Some(ticket) = self.ticket.take() {
            self.tracking.lock().finish(ticket, Some(stored.clone()));
        }
    }
}

impl Drop for Read<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.tracking.lock().finish(ticket, None);
        }
    }
}

/// What the cache did so far.
pub(crate) struct Snapshot {
    pub(crate) counters: super::cache::Counters,
    pub(crate) entries: usize,
    pub(crate) coherent: bool,
}

impl Tracking {
    /// A cache of at most `capacity` sessions for the node `client`
    /// (RESP3) reaches; nothing is connected until the first load.
    pub(crate) fn new(
        capacity: usize,
        client: redis::Client,
        config: redis::AsyncConnectionConfig,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache: Mutex::new(Cache::new(capacity)),
                wake: Arc::new(Notify::new()),
                client,
                config,
                generation: AtomicU64::new(0),
                supervised: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache<Link>> {
        self.shared.lock()
    }

    /// What a load of `key` at `now` does (and, while the cache is down
    /// with no supervisor, starts one).
    pub(crate) fn lookup(&self, key: &str, now: u64) -> Cached<'_> {
        let lookup = self.lock().lookup(key, now);
        match lookup {
            Lookup::Hit(stored) => {
                crate::metrics::read_cache("hit", 1);
                Cached::Hit(stored)
            }
            Lookup::Miss(ticket, link) => {
                crate::metrics::read_cache("miss", 1);
                Cached::Read(Read {
                    tracking: self,
                    ticket: Some(ticket),
                    link,
                })
            }
            Lookup::Bypass => {
                supervise(&self.shared);
                Cached::Bypass
            }
        }
    }

    /// This instance wrote or deleted `keys`: forget them now (the
    /// invalidations Redis sends for them may come later).
    pub(crate) fn forget(&self, keys: &[&str]) {
        let mut cache = self.lock();
        for key in keys {
            cache.invalidate(key, false);
        }
    }

    /// Returns once every invalidation caused by the writes this instance
    /// already saw acknowledged has been applied: a `PING` on the tracking
    /// connection (see the module docs). For writes whose keys the caller
    /// does not all know (a delete that follows tombstones inside a
    /// script). A failure turns the cache off.
    pub(crate) async fn fence(&self) {
        let Some((generation, mut link)) = self.lock().link() else {
            return;
        };
        if ping(&mut link).await.is_err() {
            self.shared.lost(generation);
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let cache = self.lock();
        Snapshot {
            counters: cache.counters(),
            entries: cache.len(),
            coherent: cache.coherent(),
        }
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        // The supervisor holds only a `Weak`: wake it so it sees the store
        // is gone and ends (dropping the connection).
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cache<Link>> {
        // A panic under this lock leaves a cache whose worst state is a
        // missing entry; keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tracking connection `generation` is gone or unusable.
    fn lost(&self, generation: u64) {
        if self.lock().down(generation) {
            crate::metrics::read_cache("flush", 1);
            tracing::info!("the Redis read cache lost its tracking connection; flushed, bypassed until it reconnects");
            self.wake.notify_one();
        }
    }

    /// A push on tracking connection `generation`.
    fn push(&self, generation: u64, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => {
                let mut invalidated = 0;
                let mut flushed = false;
                {
                    let mut cache = self.lock();
                    for value in info.data {
                        match value {
                            Value::Array(keys) | Value::Set(keys) => {
                                for key in keys {
                                    if let Value::BulkString(key) = key {
                                        if let Ok(key) = std::str::from_utf8(&key) {
                                            cache.invalidate(key, true);
                                            invalidated += 1;
                                        }
                                    }
                                }
                            }
                            // `FLUSHDB` / `FLUSHALL`: every key.
                            Value::Nil => {
                                cache.flush();
                                flushed = true;
                            }
                            _ => {}
                        }
                    }
                }
                if invalidated > 0 {
                    crate::metrics::read_cache("invalidation", invalidated);
                }
                if flushed {
                    crate::metrics::read_cache("flush", 1);
                }
            }
            PushKind::Disconnection => self.lost(generation),
            _ => {}
        }
    }

    /// A new tracking connection, numbered `generation`, whose pushes go to
    /// `weak`'s cache.
    async fn connect(&self, generation: u64, weak: Weak<Shared>) -> redis::RedisResult<Link> {
        let sender = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(shared) = weak.upgrade() {
                shared.push(generation, info);
            }
            Ok(())
        };
        let config = self.config.clone().set_push_sender(sender);
        let mut link = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query_async::<()>(&mut link)
            .await?;
        Ok(link)
    }
}

async fn ping(link: &mut Link) -> redis::RedisResult<()> {
    redis::cmd("PING").query_async::<()>(link).await
}

/// Starts the supervisor unless one is alive (or there is no runtime).
fn supervise(shared: &Arc<Shared>) {
    if shared.supervised.load(Ordering::Acquire) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if shared.supervised.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak = Arc::downgrade(shared);
    let wake = Arc::clone(&shared.wake);
    runtime.spawn(run(weak, wake));
}

/// Marks the supervisor gone when its task ends or is dropped with its
/// runtime (then the connection's driver is gone too: turn the cache off).
struct Alive(Weak<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            let current = shared.lock().link().map(|(generation, _)| generation);
            if let Some(generation) = current {
                shared.lost(generation);
            }
            shared.supervised.store(false, Ordering::Release);
        }
    }
}

/// Connect, watch, reconnect, until the store is dropped.
async fn run(weak: Weak<Shared>, wake: Arc<Notify>) {
    let _alive = Alive(weak.clone());
    let mut failures = 0u32;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        match shared.connect(generation, weak.clone()).await {
            Ok(link) => {
                shared.lock().up(generation, link);
                failures = 0;
                drop(shared);
                if !watch(&weak, &wake, generation).await {
                    return;
                }
            }
            Err(error) => {
                drop(shared);
                tracing::debug!(error = %error, "the Redis read cache could not open its tracking connection; retrying");
            }
        }
        failures = failures.saturating_add(1);
        // Woken early only by the store's drop (or a stale wake-up).
        let _ = tokio::time::timeout(backoff(failures), wake.notified()).await;
    }
}

/// Heartbeats connection `generation` until it is lost (`true`) or the
/// store is dropped (`false`).
async fn watch(weak: &Weak<Shared>, wake: &Notify, generation: u64) -> bool {
    loop {
        let _ = tokio::time::timeout(HEARTBEAT, wake.notified()).await;
        let Some(shared) = weak.upgrade() else {
            return false;
        };
        let Some((current, mut link)) = shared.lock().link() else {
            return true;
        };
        if current != generation {
            return true;
        }
        if ping(&mut link).await.is_err() {
            shared.lost(generation);
            return true;
        }
    }
}

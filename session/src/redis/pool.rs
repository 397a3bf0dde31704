//! The connection pool: `deadpool` with a manager that does not pay a health
//! check round trip on every checkout.
//!
//! `deadpool-redis`'s own manager pipelines `UNWATCH` + `PING` each time a
//! connection is taken from the pool (deadpool issue #307), which adds a
//! round trip to every session load and save. This manager creates
//! connections the same way but, on checkout, sends `PING` only when the
//! connection
//! - was idle for longer than the health check interval, or
//! - was created before the last connection failure seen by the pool (after
//!   Redis restarts, every old connection is checked once before use).
//!
//! A connection whose command failed at the connection level is marked
//! broken and dropped instead of being reused. The store never sends
//! `WATCH`, so there is nothing for `UNWATCH` to undo.
//!
//! Connections are multiplexed: the store clones the connection handle out
//! of the pool object and returns the object at once, so concurrent requests
//! share a socket and their commands are pipelined together (fewer writes,
//! reads and wake-ups than one socket per in-flight request).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::{self, aio::ConnectionLike, RedisError, RedisResult};

/// Makes one connection (single node or cluster).
pub(crate) trait Connect: Send + Sync + 'static {
    type Conn: ConnectionLike + Clone + Send + 'static;
    fn connect(&self) -> impl Future<Output = RedisResult<Self::Conn>> + Send;

    /// `WAIT replicas millis` after a write of `key` on `conn`: how many
    /// replicas have every write sent on this connection so far. One node:
    /// the command as it is.
    fn wait<'a>(
        conn: &'a mut Self::Conn,
        _key: &'a str,
        replicas: u32,
        millis: u64,
    ) -> impl Future<Output = RedisResult<i64>> + Send + 'a {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(millis);
        async move { cmd.query_async(conn).await }
    }
}

/// A pooled connection and what the pool knows about its health.
pub(crate) struct Tracked<C> {
    pub(crate) conn: C,
    /// The pool's failure generation when this connection was last known good.
    generation: u64,
    /// A command on it (or on a clone of it) failed at the connection
    /// level: never hand it out again.
    pub(crate) broken: Arc<AtomicBool>,
}

pub(crate) struct Manager<F> {
    connect: F,
    generation: AtomicU64,
    health_check_after: Duration,
}

impl<F: Connect> Manager<F> {
    pub(crate) fn new(connect: F, health_check_after: Duration) -> Self {
        Self {
            connect,
            generation: AtomicU64::new(0),
            health_check_after,
        }
    }

    /// Records a connection-level failure: every connection made before it
    /// is checked with a `PING` at its next checkout.
    pub(crate) fn connection_failed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

impl<F: Connect> managed::Manager for Manager<F> {
    type Type = Tracked<F::Conn>;
    type Error = RedisError;

    async fn create(&self) -> Result<Self::Type, RedisError> {
        // Read the generation first: a failure during the connect makes this
        // connection suspect too.
        let generation = self.generation.load(Ordering::Relaxed);
        let conn = self.connect.connect().await?;
        Ok(Tracked {
            conn,
            generation,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(&self, obj: &mut Self::Type, metrics: &Metrics) -> RecycleResult<RedisError> {
        if obj.broken.load(Ordering::Relaxed) {
            return Err(RecycleError::message(
                "a command on this connection failed; replacing it",
            ));
        }
        let generation = self.generation.load(Ordering::Relaxed);
        if obj.generation == generation && metrics.last_used() < self.health_check_after {
            return Ok(());
        }
        let pong: String = redis::cmd("PING").query_async(&mut obj.conn).await?;
        if pong != "PONG" {
            return Err(RecycleError::message("unexpected reply to PING"));
        }
        obj.generation = generation;
        Ok(())
    }
}

/// Single-node connections: multiplexed, with the configured connect and
/// response timeouts (what `deadpool-redis`'s manager makes, from a client
/// that may carry a custom TLS root certificate).
pub(crate) struct Single {
    pub(crate) client: redis::Client,
    pub(crate) config: redis::AsyncConnectionConfig,
}

impl Connect for Single {
    type Conn = redis::aio::MultiplexedConnection;

    fn connect(&self) -> impl Future<Output = RedisResult<Self::Conn>> + Send {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
    }
}

/// Cluster connections: each one knows the slot map and routes every command
/// to the node owning its key.
#[cfg(feature = "redis-cluster")]
pub(crate) struct Cluster(pub(crate) deadpool_redis::cluster::ClusterClient);

#[cfg(feature = "redis-cluster")]
impl Connect for Cluster {
    type Conn = deadpool_redis::cluster::ClusterConnection;

    fn connect(&self) -> impl Future<Output = RedisResult<Self::Conn>> + Send {
        self.0.get_async_connection()
    }

    /// `WAIT` counts the writes of one connection to one node, so it goes
    /// to the master owning `key`'s slot, on the cluster connection's link
    /// to that node: the one the write went out on (the cluster client
    /// would otherwise send it to every master and answer the minimum).
    async fn wait(
        conn: &mut Self::Conn,
        key: &str,
        replicas: u32,
        millis: u64,
    ) -> RedisResult<i64> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(millis);
        let route = Route::with_key(key, SlotAddr::Master);
        let reply = conn
            .route_command(
                cmd,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
            )
            .await?;
        Ok(redis::from_redis_value(reply)?)
    }
}

/// Connections to the primary that Redis Sentinel names: each new
/// connection asks the sentinels first, so after a failover (and the
/// `READONLY` answer of a demoted primary, which breaks the connection) the
/// pool reconnects to the new primary by itself.
#[cfg(feature = "redis-sentinel")]
pub(crate) struct Sentinel {
    pub(crate) client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    pub(crate) config: redis::AsyncConnectionConfig,
}

#[cfg(feature = "redis-sentinel")]
impl Connect for Sentinel {
    type Conn = redis::aio::MultiplexedConnection;

    async fn connect(&self) -> RedisResult<Self::Conn> {
        let client = self.client.lock().await.async_get_client().await?;
        client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }
}

/// Whether `error` means the connection itself is unusable: also a
/// `READONLY` answer, which means the node is no longer the primary (a
/// failover demoted it), so a new connection must find the primary.
pub(crate) fn breaks_connection(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || read_only(error)
}

/// Whether the command surely did not run and can be sent again on another
/// connection (the connection was already gone when it was sent, or the
/// node refused it as a replica).
pub(crate) fn retryable(error: &RedisError) -> bool {
    error.is_connection_dropped() || error.is_connection_refusal() || read_only(error)
}

/// A `READONLY` answer: the node is a replica now.
fn read_only(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
}

/// Whether `error` is Redis saying that the data is served elsewhere or not
/// right now: a failover, a resharding or a restart in progress (`READONLY`
/// from a demoted primary, `MASTERDOWN` from a replica that lost its
/// primary, `LOADING`, and a cluster's `CLUSTERDOWN`, `TRYAGAIN`, `MOVED`
/// and `ASK` once the client's own redirections and retries are spent).
/// Such an error is the store being unavailable for a moment (a 503 and
/// the breaker), not a failing backend (a 500).
pub(crate) fn failing_over(error: &RedisError) -> bool {
    matches!(
        error.code(),
        Some("READONLY" | "MASTERDOWN" | "LOADING" | "CLUSTERDOWN" | "TRYAGAIN" | "MOVED" | "ASK")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's error reply as the client parses it.
    fn reply(line: &str) -> RedisError {
        let value =
            redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).expect("an error reply");
        value.extract_error().expect_err("an error")
    }

    #[test]
    fn a_demoted_primary_breaks_the_connection_and_is_retried() {
        let error = reply("READONLY You can't write against a read only replica.");
        assert!(breaks_connection(&error));
        assert!(retryable(&error));
        assert!(failing_over(&error));
    }

    #[test]
    fn failover_and_resharding_answers_are_unavailability() {
        for line in [
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "LOADING Redis is loading the dataset in memory",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
        ] {
            let error = reply(line);
            assert!(failing_over(&error), "{line}");
            // The connection itself is fine: the cluster client follows
            // redirections on it, and the others clear by themselves.
            assert!(!breaks_connection(&error), "{line}");
        }
    }

    #[test]
    fn other_answers_are_not_a_failover() {
        for line in [
            "ERR unknown command",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "NOSCRIPT No matching script.",
            "NOPERM this user has no permissions",
        ] {
            let error = reply(line);
            assert!(!failing_over(&error), "{line}");
            assert!(!breaks_connection(&error) && !retryable(&error), "{line}");
        }
    }
}

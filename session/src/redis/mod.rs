//! The Redis store (features `redis`, `redis-cluster`, `redis-tls`); the
//! guide is on [`RedisStore`].

mod cache;
mod codec;
mod index;
mod pool;
mod scripts;
mod tracking;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Pool, PoolError, TimeoutType};
use deadpool_redis::redis::{self, aio::ConnectionLike, IntoConnectionInfo, RedisError, Value};
use deadpool_redis::Runtime;

use self::codec::{Arg, Mode, PrincipalArgs, Stored, Tomb, Unreadable};
use self::pool::{Connect, Manager, Single, Tracked};
use self::scripts::Which;
use crate::backend_failure::BackendFailure;
use crate::id::SessionId;
use crate::principal::{Principal, SessionHandle, Take};
use crate::record::{Record, FORMAT_VERSION};
use crate::store::{
    DynPrincipalIndex, Loaded, PrincipalIndex, SessionStore, StoreError, Write, WriteKind, Written,
};

/// The default key prefix ([`RedisStore::DEFAULT_PREFIX`]).
pub(crate) const DEFAULT_PREFIX: &str = "sessionkit:";

/// Sessions in Redis or Redis Cluster, on a `deadpool-redis` pool.
///
/// Cheap to clone (the pool is shared). Build it with [`RedisStore::from_url`]
/// or [`RedisStore::builder`] (single node), or
/// `RedisStore::cluster_builder` (feature `redis-cluster`). Nothing is
/// connected until the first operation, so an application can start while
/// Redis is still coming up.
///
/// ```
/// use sessionkit::{RedisStore, SessionManager};
/// # #[derive(Default)] struct Data;
/// # impl sessionkit::SessionData for Data {
/// #   const FIELDS: &'static [sessionkit::codec::FieldInfo] = &[];
/// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), sessionkit::codec::EncodeError> { Err(sessionkit::codec::EncodeError::no_field(i)) }
/// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), sessionkit::codec::DecodeError> { Err(sessionkit::codec::DecodeError::no_field(i)) }
/// #   fn reset_field(&mut self, _: usize) {}
/// # }
/// let store = RedisStore::from_url("redis://127.0.0.1:6379")?;
/// let manager = SessionManager::<Data>::new(store);
/// # let _ = manager;
/// # Ok::<(), sessionkit::RedisConfigError>(())
/// ```
///
/// # Connecting to an existing Redis or Redis Cluster
///
/// | setting | default | builder method |
/// |---|---|---|
/// | key prefix | `sessionkit:` | [`prefix`](RedisStoreBuilder::prefix) |
/// | pool size | 16 | [`pool_size`](RedisStoreBuilder::pool_size) |
/// | connect timeout | 1 s | [`connect_timeout`](RedisStoreBuilder::connect_timeout) |
/// | wait for a pooled connection | 1 s | [`wait_timeout`](RedisStoreBuilder::wait_timeout) |
/// | command (response) timeout | 1 s | [`command_timeout`](RedisStoreBuilder::command_timeout) |
/// | idle time before a `PING` on checkout | 30 s | [`health_check_interval`](RedisStoreBuilder::health_check_interval) |
/// | TLS root certificate | the system's | `tls_root_certificate` (feature `redis-tls`) |
/// | [read cache](#read-cache) (single node) | off | [`read_cache`](RedisStoreBuilder::read_cache) |
///
/// URLs have the `REDIS_URL` form `redis://[user:password@]host:port[/db]`;
/// `rediss://` (feature `redis-tls`) for TLS. A cluster takes the URLs of some
/// of its masters; the others are discovered.
///
/// ```no_run
/// use std::time::Duration;
/// use sessionkit::RedisStore;
///
/// // One Redis, e.g. REDIS_URL=redis://:secret@redis.internal:6379/0
/// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
/// let store = RedisStore::builder(url)
///     .prefix("myapp:session:")
///     .pool_size(32)
///     .command_timeout(Duration::from_millis(500))
///     .build()?;
/// # let _ = store;
/// # Ok::<(), sessionkit::RedisConfigError>(())
/// ```
///
/// # Layout
///
/// A session lives under `prefix + base64url(SHA-256(id))`: the raw id never
/// reaches Redis, so a dump of Redis gives no one a usable session token
/// ([`RedisStore::key_for`] computes the key). The key is a HASH with one
/// field per struct field (its MessagePack bytes) and two metadata fields:
/// `$meta`, decimal text `<version>:<created>:<issued>:<idle>:<deadline>`
/// (the stored format, [`FORMAT_VERSION`](crate::store::FORMAT_VERSION),
/// then [`Meta`](crate::store::Meta)'s creation and id-issue times and
/// idle timeout in milliseconds, the deadline empty when the session has no
/// absolute timeout, e.g. `2:1767225600000:1767225600000:1800000:`), and
/// `$at`, the last access, apart so that a touch rewrites one short field.
/// Rotated ids leave tombstones; the full table is in the store guide.
/// Struct field names starting with `$` are refused.
/// Every write sets the key's TTL to the time the session has left (idle
/// timeout, or the absolute deadline if sooner), so Redis drops abandoned
/// sessions by itself; the runtime still checks the timestamps on load.
///
/// # Round trips
///
/// | operation | sent to Redis |
/// |---|---|
/// | load | 1 `HGETALL` (a pure read: no script, no write) |
/// | load with the [read cache](#read-cache) on, of a session it holds | nothing |
/// | save (conditional: the session is live and the fields it expects hold what it loaded) | 1 `EVALSHA`: `HMGET` of `$meta` and the expected fields, then `HSET` (+ `HDEL`) and `PEXPIRE`; a touch (at most once per `touchAfter`) writes `$at` alone |
/// | rotate | 1 `EVALSHA` on a single node (the old key becomes a tombstone in the same script); in a cluster 2: write the new key, then seal the old one if it still holds what was loaded |
/// | delete | 1 `EVALSHA` that deletes the key and the keys its rotation tombstones lead to (on a cluster one key per round trip) |
/// | login (the session takes a principal), rotation of a session with a principal | 1 more `EVALSHA`, on the principal's index, before the write |
/// | list a user's sessions | 1 `EVALSHA` + the sessions' `HGETALL`s, concurrently |
/// | revoke | 1 `EVALSHA` (take the entries) + 2 rounds of concurrent `EVALSHA`s (conditional deletes) |
///
/// A request that does not touch its session sends nothing. A server that
/// does not know a script yet (new or restarted) answers `NOSCRIPT` once;
/// the store then sends `EVAL`, which caches it. Taking a connection from the
/// pool costs no round trip when it was used within the health check
/// interval, unlike `deadpool-redis`'s default manager, which sends
/// `UNWATCH` + `PING` on every checkout.
///
/// # Sessions per user
///
/// For a session type with a `#[session(principal)]` field, the store keeps
/// one sorted set per principal, `prefix + "principal:" +
/// base64url(SHA-256(principal))` ([`RedisStore::principal_key_for`]),
/// whose members are the handles of its sessions (the last 43 characters
/// of their keys; never an id, never the principal in clear), scored by a
/// deadline no session outlives. Indexed sessions hold two more hash fields,
/// `$px` (the principal's hash) and `$pd` (that deadline). Sessions without a
/// principal hold and send nothing more. The set is written before the
/// session on login and on rotation (which is how a rotation learns that its
/// session was revoked), pruned by its scores on every access and by
/// checking the sessions when listed, and expires with its last entry; it
/// never relies on keyspace notifications, and works with any prefix and in
/// a cluster, where it lives in another slot than its sessions.
///
/// A partial save of a session that is no longer in Redis (destroyed by a
/// concurrent request, or expired) writes nothing, so it cannot bring back a
/// fragment of a logged-out session. Concurrent requests of one session
/// that change different fields never lose each other's writes.
///
/// # Read cache
///
/// Off by default. [`RedisStoreBuilder::read_cache`]`(max_sessions)` on a
/// single-node store keeps the hashes that loads read in the application's
/// memory, so a repeated load of a session sends nothing to Redis. Redis
/// keeps the copies coherent (server-assisted client-side caching): the
/// store opens one more connection, in RESP3 with `CLIENT TRACKING ON`,
/// sends every cached read on it, and Redis then pushes an `invalidate`
/// message on it when any client changes or deletes a key this connection
/// read, when the key expires or is evicted, or when the database is
/// flushed; the cache drops the key (or everything) as the message is read.
/// What is cached: the hash a load reads, a session or a rotation
/// tombstone, decoded. Never cached: keys that hold nothing, unreadable
/// hashes, principal indexes, and the reads of listing and revoking a
/// user's sessions (always from Redis). A cluster or Sentinel store with a
/// read cache is [`RedisConfigError::ReadCacheNeedsOneNode`].
///
/// **How stale a cached load can be.**
/// - *On the same instance (the same `RedisStore` or its clones): never.*
///   When a write, rotation, delete or revocation by this store returns,
///   whatever its outcome, the keys it changed are out of the cache: those
///   it names are forgotten when it answers, and a delete (which follows
///   tombstones to keys the caller does not know) also waits for a `PING`
///   on the tracking connection, which Redis answers only after the
///   invalidations that delete caused. A read in flight during such a
///   change is not kept.
/// - *A change made by another instance* (a write, a logout, a revocation,
///   an expiry) is seen by every load that starts after Redis' invalidation
///   message reached this instance: one message from Redis to this
///   process after the change (its measured delay, p50 and p99, is in the
///   benchmark reports under `session-bench/results/`). Until then a load
///   may return the session as it was before that change. In particular,
///   guarantee 7 of the concurrency guarantees (after a revocation returns,
///   no revoked session is loaded again) holds on the revoking instance at
///   once and on the others once the invalidation arrives.
/// - *Writes stay conditional*, so a stale cached load never loses an
///   update: a write based on it answers `Conflict` with the fresh record
///   (the runtime replays the request's changes on it: one round trip
///   more), or `Gone` if the session was deleted, which is never written
///   again. The conflict's record is not cached (it was not read on the
///   tracking connection); the next load reads the key again.
/// - *Expiry:* an entry is never served past its session's idle or absolute
///   expiry (checked on every hit against the load's time) nor a tombstone
///   past its grace period; the load then goes to Redis.
///
/// **When the tracking connection is lost** (it drops, a command on it
/// fails or times out, or a heartbeat `PING`, sent every second, fails),
/// the whole cache is emptied and every load goes to Redis through the
/// pool, exactly as without a cache, until a new tracking connection is up;
/// the store reconnects in the background (after 50 ms, then doubling up to
/// 5 s between attempts). A network failure that drops no connection (no
/// reset, packets lost) is noticed by the heartbeat: for at most one
/// second plus the command timeout, loads may still be served from entries
/// whose invalidations cannot arrive.
///
/// **Memory:** at most `max_sessions` entries (sessions and tombstones),
/// each a copy of one hash (its field names and values and the metadata,
/// about the size of the hash in Redis) plus its key and about 100 bytes
/// of bookkeeping; a full cache evicts by CLOCK (an entry read since the
/// hand last passed it gets a second chance). In Redis, tracking costs
/// an entry in its tracking table per key read (bounded by Redis'
/// `tracking-table-max-keys`; when it is full Redis invalidates keys, which
/// only evicts them here).
///
/// **Cost:** one more connection per store; a miss is the same `HGETALL`,
/// sent on that connection; a hit is no round trip at all; a delete costs
/// one `PING` more (a revocation two per session it deletes: one per
/// delete pass). Redis pushes an invalidation for every write of a key the
/// cache read, and this instance's next load of it is a miss: on a route
/// that writes its session on every request the cache saves nothing and
/// costs that message, so turn it on for read-mostly traffic (the
/// benchmark reports under `session-bench/results/` have both cases).
/// Counters:
/// [`RedisStore::read_cache_stats`] and the
/// `sessionkit_store_read_cache_total` metric ([`metrics`](crate::metrics)).
///
/// # Faults
///
/// Every operation is bounded by the wait, connect and command timeouts,
/// after which it fails with [`StoreError::Timeout`] or
/// [`StoreError::Unavailable`] (the message names the Redis address and what
/// to check). When Redis comes back the same store works again: a command
/// that fails because its connection died is retried once on a fresh one,
/// and after any connection failure every older pooled connection is checked
/// with a `PING` before reuse. A stored hash that cannot be read (missing or
/// malformed metadata, or not a hash) is logged, deleted and treated as
/// absent, so the client gets a fresh session rather than an error; one
/// written in an unknown format version (another release of sessionkit) is
/// treated as absent and left to expire.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    /// Where the store points, for error messages (no credentials).
    target: String,
    command_timeout: Duration,
    /// The bound on one whole operation, retry included.
    operation_timeout: Duration,
    /// Writes are acknowledged only once this many replicas have them
    /// (`WAIT`), within this time.
    durability: Option<(u32, Duration)>,
    /// The read cache, when [`RedisStoreBuilder::read_cache`] turned it on.
    tracking: Option<tracking::Tracking>,
}

enum Backend {
    Single(Pool<Manager<Single>>),
    #[cfg(feature = "redis-cluster")]
    Cluster(Pool<Manager<pool::Cluster>>),
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Pool<Manager<pool::Sentinel>>),
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("cluster", &self.is_cluster())
            .field("read_cache", &self.inner.tracking.is_some())
            .finish_non_exhaustive()
    }
}

/// The counters of a [`RedisStore`]'s read cache
/// ([`RedisStore::read_cache_stats`]), since the store was built.
///
/// ```
/// let store = sessionkit::RedisStore::builder("redis://127.0.0.1:6379")
///     .read_cache(1_000)
///     .build()?;
/// let stats = store.read_cache_stats().expect("on");
/// assert_eq!(stats.misses + stats.invalidations + stats.flushes, 0);
/// # Ok::<(), sessionkit::RedisConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadCacheStats {
    /// Loads answered from memory.
    pub hits: u64,
    /// Loads sent to Redis on the tracking connection (their replies are
    /// kept unless invalidated meanwhile). Loads while the cache is off
    /// count neither as hits nor as misses.
    pub misses: u64,
    /// Keys Redis said changed (invalidation messages received; this
    /// instance's own writes are forgotten at once and not counted).
    pub invalidations: u64,
    /// Times the whole cache was emptied: the tracking connection was lost
    /// (the cache is then off until it is back), or Redis flushed its
    /// database.
    pub flushes: u64,
    /// Sessions (and rotation tombstones) held now.
    pub entries: usize,
    /// Whether tracking is on, so loads are served from memory: `false`
    /// before the first connection and while reconnecting.
    pub coherent: bool,
}

/// Why a [`RedisStore`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// A node URL did not parse.
    #[error("invalid Redis URL; expected e.g. redis://[user:password@]host:6379[/db] or rediss://… for TLS")]
    Url(#[source] RedisError),
    /// `rediss://` was given but the `redis-tls` feature is off.
    #[error("a rediss:// URL needs TLS: enable sessionkit's `redis-tls` feature")]
    TlsDisabled,
    /// A cluster was configured with no node.
    #[error("a Redis Cluster store needs at least one node URL")]
    NoNodes,
    /// A setting is out of range.
    #[error("invalid Redis store setting: {0}")]
    Setting(&'static str),
    /// The cluster client could not be built from the node URLs.
    #[error("could not configure the Redis Cluster client")]
    Cluster(#[source] RedisError),
    /// The pool could not be built.
    #[error("could not build the Redis connection pool: {0}")]
    Pool(String),
    /// A `redis+sentinel://` URL was given but the `redis-sentinel` feature
    /// is off.
    #[error("a redis+sentinel:// URL needs Sentinel support: enable sessionkit's `redis-sentinel` feature")]
    SentinelDisabled,
    /// A `redis+sentinel://` URL does not have the expected shape.
    #[error("invalid Redis Sentinel URL ({0}); expected redis+sentinel://[user:password@]host:26379[,host:26379…]/service[/db]")]
    SentinelUrl(&'static str),
    /// [`RedisStoreBuilder::read_cache`] on a store that is not one node
    /// (`topology`: `"Redis Cluster"` or `"Redis Sentinel"`).
    #[error("the Redis read cache needs a single-node store, and this is a {topology} store: remove `.read_cache(..)`, or give the store one node's URL (RedisStore::builder)")]
    ReadCacheNeedsOneNode {
        /// What the store is instead.
        topology: &'static str,
    },
}

/// The scheme of a Sentinel URL.
const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// `redis+sentinel://` URLs, parsed into a builder.
#[cfg(feature = "redis-sentinel")]
mod sentinel_url {
    use super::{RedisConfigError, RedisStore, RedisStoreBuilder, SENTINEL_SCHEME};

    /// The builder `url` describes: sentinels without credentials, the
    /// primary with the URL's credentials and database.
    pub(super) fn parse(url: &str) -> Result<RedisStoreBuilder, RedisConfigError> {
        let rest = url
            .strip_prefix(SENTINEL_SCHEME)
            .ok_or(RedisConfigError::SentinelUrl("wrong scheme"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or(RedisConfigError::SentinelUrl("no service name"))?;
        let (auth, hosts) = match authority.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, authority),
        };
        let mut path = path.split('/');
        let service = path
            .next()
            .filter(|s| !s.is_empty())
            .ok_or(RedisConfigError::SentinelUrl("no service name"))?;
        let db = match path.next() {
            None | Some("") => None,
            Some(db) if db.bytes().all(|b| b.is_ascii_digit()) => Some(db),
            Some(_) => {
                return Err(RedisConfigError::SentinelUrl(
                    "the database is not a number",
                ))
            }
        };
        if path.next().is_some() {
            return Err(RedisConfigError::SentinelUrl("too many path segments"));
        }
        let sentinels: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}"))
            .collect();
        if sentinels.is_empty() {
            return Err(RedisConfigError::SentinelUrl("no sentinel address"));
        }
        let primary = format!(
            "redis://{}primary/{}",
            auth.map(|a| format!("{a}@")).unwrap_or_default(),
            db.unwrap_or("0")
        );
        Ok(RedisStore::sentinel_builder(sentinels, service).primary(primary))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sentinel_urls_name_sentinels_service_and_primary() {
            let b =
                parse("redis+sentinel://:pw@10.0.0.1:26379, 10.0.0.2:26379/sessions/3").unwrap();
            assert_eq!(b.urls, ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
            assert_eq!(b.sentinel.as_deref(), Some("sessions"));
            assert_eq!(b.primary.as_deref(), Some("redis://:pw@primary/3"));
            let b = parse("redis+sentinel://h:26379/s").unwrap();
            assert_eq!(b.primary.as_deref(), Some("redis://primary/0"));
            for bad in [
                "redis+sentinel://h:26379",
                "redis+sentinel://h:26379/",
                "redis+sentinel:///s",
                "redis+sentinel://h/s/x",
                "redis+sentinel://h/s/1/2",
            ] {
                assert!(
                    matches!(parse(bad), Err(RedisConfigError::SentinelUrl(_))),
                    "{bad}"
                );
            }
            assert!(RedisStore::from_url("redis+sentinel://h:26379/s").is_ok());
        }
    }
}

/// Configures a [`RedisStore`]; see each method for its default.
#[must_use]
#[derive(Clone)]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
    /// The Sentinel service name: `urls` are sentinels, `primary` the
    /// primary's settings (credentials, database).
    sentinel: Option<String>,
    #[cfg(feature = "redis-sentinel")]
    primary: Option<String>,
    prefix: String,
    pool_size: usize,
    connect_timeout: Duration,
    wait_timeout: Duration,
    command_timeout: Duration,
    health_check_interval: Duration,
    durability: Option<(u32, Duration)>,
    /// At most this many sessions in the read cache; `None`: no cache.
    read_cache: Option<usize>,
    #[cfg(feature = "redis-tls")]
    tls_root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may hold passwords: show only how many there are.
        f.debug_struct("RedisStoreBuilder")
            .field("nodes", &self.urls.len())
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("health_check_interval", &self.health_check_interval)
            .field("read_cache", &self.read_cache)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The key prefix a store uses unless the builder or `redisPrefix` sets
    /// another: `sessionkit:`.
    pub const DEFAULT_PREFIX: &'static str = DEFAULT_PREFIX;

    /// A single-node store with the default settings, from a URL such as
    /// `redis://[user:password@]host:6379[/db]` (the `REDIS_URL` format) or,
    /// with the `redis-tls` feature, `rediss://…`.
    ///
    /// # Errors
    /// [`RedisConfigError`] for a malformed URL; nothing is connected yet.
    pub fn from_url(url: impl Into<String>) -> Result<Self, RedisConfigError> {
        let url = url.into();
        #[cfg(feature = "redis-sentinel")]
        if url.starts_with(SENTINEL_SCHEME) {
            return sentinel_url::parse(&url)?.build();
        }
        #[cfg(not(feature = "redis-sentinel"))]
        if url.starts_with(SENTINEL_SCHEME) {
            return Err(RedisConfigError::SentinelDisabled);
        }
        Self::builder(url).build()
    }

    /// A builder for a store on the primary that Redis Sentinel names for
    /// `service`, from the URLs of some sentinels (`redis://host:26379`).
    /// Every new connection asks the sentinels where the primary is, so
    /// after a failover the store finds the new primary by itself: a
    /// connection to a demoted primary breaks at its first `READONLY`
    /// answer, and the operation is sent again on a new connection. While
    /// the sentinels elect a new primary, operations fail fast
    /// ([`StoreError::Unavailable`], which a [`CircuitBreaker`](crate::breaker::CircuitBreaker)
    /// and `FailurePolicy::Anonymous` handle as for a Redis that is down).
    ///
    /// `redis+sentinel://[user:password@]host:26379[,host:26379…]/service[/db]`
    /// in [`RedisStore::from_url`] (and the examples' `REDIS_URL`) means the
    /// same; the credentials and database there are the primary's.
    ///
    /// ```
    /// let store = sessionkit::RedisStore::sentinel_builder(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///     "sessions",
    /// )
    /// .primary("redis://:secret@primary/0")
    /// .build()?;
    /// assert!(!store.is_cluster());
    /// # Ok::<(), sessionkit::RedisConfigError>(())
    /// ```
    #[cfg(feature = "redis-sentinel")]
    pub fn sentinel_builder<I, U>(sentinels: I, service: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let mut builder =
            RedisStoreBuilder::new(sentinels.into_iter().map(Into::into).collect(), false);
        builder.sentinel = Some(service.into());
        builder
    }

    /// A builder for a single-node store.
    ///
    /// ```
    /// let builder = sessionkit::RedisStore::builder("redis://127.0.0.1:6379");
    /// # let _ = builder;
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(vec![url.into()], false)
    }

    /// A builder for a Redis Cluster store, from the URLs of some of its
    /// nodes (the rest are discovered).
    ///
    /// Old and new ids of a rotated session hash to different slots, so a
    /// rotation is two round trips: the new key is written, then the old one
    /// deleted; if the delete fails the rotation returns the error (and is
    /// retried by the next commit), so the old key is never left readable
    /// after a rotation that reported success.
    ///
    /// ```
    /// // e.g. REDIS_CLUSTER_NODES=redis://10.0.0.1:6379,redis://10.0.0.2:6379
    /// let nodes = std::env::var("REDIS_CLUSTER_NODES")
    ///     .unwrap_or_else(|_| "redis://10.0.0.1:6379,redis://10.0.0.2:6379".into());
    /// let store = sessionkit::RedisStore::cluster_builder(nodes.split(','))
    ///     .prefix("myapp:session:")
    ///     .build()?;
    /// assert!(store.is_cluster());
    /// # Ok::<(), sessionkit::RedisConfigError>(())
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_builder<I, U>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisStoreBuilder::new(urls.into_iter().map(Into::into).collect(), true)
    }

    /// Whether this store talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        match self.inner.backend {
            Backend::Single(_) => false,
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(_) => false,
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(_) => true,
        }
    }

    /// The Redis key a session id is stored under (for operations work:
    /// inspecting or deleting one session by hand).
    ///
    /// ```
    /// # let store = sessionkit::RedisStore::from_url("redis://127.0.0.1:6379")?;
    /// let id = sessionkit::id::SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f")?;
    /// let key = store.key_for(&id);
    /// assert!(key.starts_with("sessionkit:") && !key.contains(id.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn key_for(&self, id: &SessionId) -> String {
        codec::key(&self.inner.prefix, id)
    }

    /// The key of a principal's index (a sorted set of its sessions'
    /// handles; see the guide on sessions per user), for operations work.
    ///
    /// ```
    /// # let store = sessionkit::RedisStore::from_url("redis://127.0.0.1:6379")?;
    /// let user = sessionkit::store::Principal::of(&42u64).expect("a principal");
    /// let key = store.principal_key_for(&user);
    /// assert!(key.starts_with("sessionkit:principal:") && !key.ends_with(":42"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn principal_key_for(&self, principal: &Principal) -> String {
        index::index_key(&self.inner.prefix, &index::principal_hash(principal))
    }

    /// What the read cache did so far, or `None` when it is off
    /// ([`RedisStoreBuilder::read_cache`]). The same counts are recorded as
    /// the `sessionkit_store_read_cache_total` metric.
    ///
    /// ```
    /// let plain = sessionkit::RedisStore::from_url("redis://127.0.0.1:6379")?;
    /// assert!(plain.read_cache_stats().is_none());
    /// # Ok::<(), sessionkit::RedisConfigError>(())
    /// ```
    #[must_use]
    pub fn read_cache_stats(&self) -> Option<ReadCacheStats> {
        let snapshot = self.inner.tracking.as_ref()?.snapshot();
        Some(ReadCacheStats {
            hits: snapshot.counters.hits,
            misses: snapshot.counters.misses,
            invalidations: snapshot.counters.invalidations,
            flushes: snapshot.counters.flushes,
            entries: snapshot.entries,
            coherent: snapshot.coherent,
        })
    }

    /// Runs one script or command with the pool, a retry on a connection
    /// that turned out dead, and the whole operation bounded in time.
    async fn run(&self, op: Op<'_>) -> Result<Value, StoreError> {
        let inner = &self.inner;
        let work = async {
            match &inner.backend {
                Backend::Single(pool) => run_on(pool, inner, &op).await,
                #[cfg(feature = "redis-cluster")]
                Backend::Cluster(pool) => run_on(pool, inner, &op).await,
                #[cfg(feature = "redis-sentinel")]
                Backend::Sentinel(pool) => run_on(pool, inner, &op).await,
            }
        };
        match tokio::time::timeout(inner.operation_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(inner.operation_timeout)),
        }
    }

    /// Runs a script; with the read cache on, forgets the keys it may have
    /// changed once it is over (whatever its outcome: a timed-out write may
    /// have applied).
    async fn script(
        &self,
        which: Which,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Value, StoreError> {
        let result = self.run(Op::Script(which, keys, args)).await;
        if let Some(tracking) = &self.inner.tracking {
            match which {
                // A write changes the keys it names (a rotation: both).
                Which::Write => tracking.forget(keys),
                // A delete follows tombstones to keys the caller does not
                // know: wait until Redis' invalidations of them are applied.
                Which::Delete | Which::DeleteOwned => {
                    tracking.forget(keys);
                    tracking.fence().await;
                }
                // Principal indexes are never cached.
                Which::Index => {}
            }
        }
        result
    }

    async fn del(&self, key: &str) -> Result<(), StoreError> {
        let result = self.run(Op::Del(key)).await.map(drop);
        if let Some(tracking) = &self.inner.tracking {
            tracking.forget(&[key]);
        }
        result
    }

    async fn load_record(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        let key = self.key_for(id);
        let mut read = match &self.inner.tracking {
            Some(tracking) => match tracking.lookup(&key, now) {
                tracking::Cached::Hit(stored) => return Ok(loaded(id, stored, now)),
                tracking::Cached::Read(read) => Some(read),
                tracking::Cached::Bypass => None,
            },
            None => None,
        };
        let reply = match read.as_mut() {
            Some(cached) => match cached.hgetall(&key).await {
                Ok(reply) => Ok(reply),
                // The tracking connection broke (the cache is off now): read
                // through the pool, keep nothing.
                Err(error) if pool::breaks_connection(&error) => {
                    read = None;
                    self.run(Op::HGetAll(&key)).await
                }
                Err(error) => Err(redis_error(error, &self.inner)),
            },
            None => self.run(Op::HGetAll(&key)).await,
        };
        let flat = match reply {
            Ok(reply) => flat_bytes(reply)?,
            Err(StoreError::Corrupt(why)) if why == WRONG_TYPE => {
                tracing::warn!("a session key holds another type than a hash; deleting it and starting a new session");
                self.del(&key).await?;
                return Ok(Loaded::Absent);
            }
            Err(error) => return Err(error),
        };
        if flat.is_empty() {
            return Ok(Loaded::Absent);
        }
        match codec::decode(flat) {
            Ok(stored) => {
                if let Some(read) = read {
                    read.keep(&stored);
                }
                Ok(loaded(id, stored, now))
            }
            Err(Unreadable::Version(version)) => {
                tracing::warn!(
                    stored_version = %version,
                    expected = FORMAT_VERSION,
                    "a stored session was written in another format version; treating it as absent (it expires by its TTL)"
                );
                Ok(Loaded::Absent)
            }
            Err(Unreadable::Corrupt(why)) => {
                tracing::warn!(reason = %why, "a stored session is corrupt; deleting it and starting a new session");
                self.del(&key).await?;
                Ok(Loaded::Absent)
            }
        }
    }

    /// Writes a session; `principal` is the principal part of the script's
    /// arguments (`index.rs` decides it and does the index step first).
    async fn write_record(
        &self,
        write: &Write,
        principal: Option<&PrincipalArgs>,
    ) -> Result<Written, StoreError> {
        let key = self.key_for(&write.id);
        let WriteKind::Rotate {
            to,
            grace_ms,
            full,
            loaded,
        } = &write.kind
        else {
            let mode = if write.kind == WriteKind::Create {
                Mode::Create
            } else {
                Mode::Update
            };
            let args = codec::write_args(mode, write, &write.set, &write.expect, None, principal)
                .map_err(StoreError::Corrupt)?;
            let reply = self.script(Which::Write, &[&key], &args).await?;
            return written(reply, &write.id);
        };
        let new_key = self.key_for(to);
        let tomb = Tomb {
            grace_ms: *grace_ms,
            forward: if *grace_ms > 0 {
                codec::seal_forward(&write.id, to)
            } else {
                String::new()
            },
            new_key: &new_key,
        };
        if !self.is_cluster() {
            let args = codec::write_args(
                Mode::Rotate,
                write,
                &write.set,
                &write.expect,
                Some(&tomb),
                principal,
            )
            .map_err(StoreError::Corrupt)?;
            let reply = self.script(Which::Write, &[&key, &new_key], &args).await?;
            return written(reply, &write.id);
        }
        // Two hash slots: write the new key first (nobody knows its id
        // yet), then turn the old key into a tombstone only if it still holds
        // exactly what this request loaded; otherwise undo the new key.
        let create = Write {
            id: to.clone(),
            kind: WriteKind::Create,
            ..write.clone()
        };
        let args = codec::write_args(Mode::Create, &create, full, &[], None, principal)
            .map_err(StoreError::Corrupt)?;
        let reply = self.script(Which::Write, &[&new_key], &args).await?;
        written(reply, to)?;
        let args = codec::write_args(Mode::Seal, write, &[], loaded, Some(&tomb), None)
            .map_err(StoreError::Corrupt)?;
        let sealed = match self.script(Which::Write, &[&key], &args).await {
            Ok(reply) => written(reply, &write.id),
            Err(error) => Err(error),
        };
        if !matches!(sealed, Ok(Written::Done)) {
            self.del(&new_key).await?;
        }
        sealed
    }

    /// Deletes a session and the ids it forwards to; then, if it had a
    /// principal, drops the deleted keys' index entries (one more round
    /// trip, only for sessions with a principal).
    async fn delete_record(&self, id: &SessionId) -> Result<(), StoreError> {
        let hops: &[u8] = if self.is_cluster() { b"1" } else { b"4" };
        let mut key = self.key_for(id);
        let mut visited = Vec::new();
        let mut owner = None;
        for _ in 0..4 {
            let reply = self
                .script(Which::Delete, &[&key], &[Arg::Borrowed(hops)])
                .await?;
            let (next, px) = deleted(reply)?;
            visited.push(std::mem::take(&mut key));
            if !px.is_empty() {
                owner = Some(px);
            }
            if next.is_empty() {
                break;
            }
            key = next;
        }
        if let Some(px) = owner {
            index::forget(self, &px, &visited).await;
        }
        Ok(())
    }
}

/// A stored hash as a load's answer at `now`.
fn loaded(id: &SessionId, stored: Stored, now: u64) -> Loaded {
    match stored {
        Stored::Session(record) => Loaded::Session(record),
        Stored::Tombstone { forward, until, .. } => match forward {
            Some(forward) if until > now => {
                codec::open_forward(id, &forward).map_or(Loaded::Absent, Loaded::Moved)
            }
            _ => Loaded::Absent,
        },
    }
}

/// The `{next key, $px}` reply of the delete script.
fn deleted(reply: Value) -> Result<(String, String), StoreError> {
    let text = |value: Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes)
            .map_err(|_| StoreError::Corrupt("a tombstone names a key that is not UTF-8".into())),
        other => Err(unexpected("delete", &other)),
    };
    match reply {
        Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            let (Some(next), Some(px)) = (items.next(), items.next()) else {
                return Err(StoreError::Corrupt(
                    "the delete script's reply is incomplete".into(),
                ));
            };
            Ok((text(next)?, text(px)?))
        }
        other => Err(unexpected("delete", &other)),
    }
}

/// One round trip's worth of work.
enum Op<'a> {
    Script(Which, &'a [&'a str], &'a [Arg<'a>]),
    Del(&'a str),
    HGetAll(&'a str),
}

impl Op<'_> {
    /// The key a write changes (the first a script names), for `WAIT`;
    /// `None` for a read.
    fn written_key(&self) -> Option<&str> {
        match self {
            Op::Script(_, keys, _) => keys.first().copied(),
            Op::Del(key) => Some(key),
            Op::HGetAll(_) => None,
        }
    }
}

async fn exec<C: ConnectionLike + Send>(conn: &mut C, op: &Op<'_>) -> redis::RedisResult<Value> {
    match op {
        Op::Script(which, keys, args) => scripts::invoke(conn, *which, keys, args).await,
        Op::Del(key) => redis::cmd("DEL").arg(*key).query_async(conn).await,
        Op::HGetAll(key) => redis::cmd("HGETALL").arg(*key).query_async(conn).await,
    }
}

/// The write script's reply as a [`Written`]; anything else is an error.
fn written(reply: Value, id: &SessionId) -> Result<Written, StoreError> {
    match reply {
        Value::Int(1) => Ok(Written::Done),
        Value::Int(0) => Ok(Written::Gone),
        Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            let (Some(tag), Some(body)) = (items.next(), items.next()) else {
                return Err(StoreError::Corrupt(
                    "the write script answered a short array".into(),
                ));
            };
            match (tag, body) {
                (Value::BulkString(tag), Value::BulkString(forward)) if tag == b"moved" => {
                    Ok(codec::open_forward(id, &forward).map_or(Written::Gone, Written::Moved))
                }
                (Value::BulkString(tag), hash) if tag == b"conflict" => {
                    match codec::decode(flat_bytes(hash)?) {
                        Ok(Stored::Session(record)) => Ok(Written::Conflict(record)),
                        _ => Ok(Written::Gone),
                    }
                }
                (tag, _) => Err(unexpected("write", &tag)),
            }
        }
        other => Err(unexpected("write", &other)),
    }
}

fn unexpected(script: &str, reply: &Value) -> StoreError {
    let kind = match reply {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) => "a status",
        Value::Okay => "OK",
        _ => "another type",
    };
    StoreError::Corrupt(format!(
        "the {script} reply was {kind}, which sessionkit never expects: is this a Redis server, and does it run sessionkit's scripts?"
    ))
}

async fn run_on<F: Connect>(
    pool: &Pool<Manager<F>>,
    inner: &Inner,
    op: &Op<'_>,
) -> Result<Value, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Take a handle to a multiplexed connection and give the pool object
        // back at once: concurrent requests then share the connection and
        // their commands are pipelined on one socket.
        let (mut conn, broken) = {
            let object = pool.get().await.map_err(|e| pool_error(e, inner))?;
            let tracked: &Tracked<F::Conn> = &object;
            (tracked.conn.clone(), Arc::clone(&tracked.broken))
        };
        match exec(&mut conn, op).await {
            Ok(value) => {
                return match (inner.durability, op.written_key()) {
                    (Some((replicas, timeout)), Some(key)) => {
                        replicated::<F>(&mut conn, key, replicas, timeout, inner).await?;
                        Ok(value)
                    }
                    _ => Ok(value),
                }
            }
            Err(error) => {
                if pool::breaks_connection(&error) {
                    broken.store(true, std::sync::atomic::Ordering::Relaxed);
                    pool.manager().connection_failed();
                    if attempt == 1 && pool::retryable(&error) {
                        tracing::debug!(%error, "Redis connection was dead; retrying on another");
                        continue;
                    }
                }
                return Err(redis_error(error, inner));
            }
        }
    }
}

/// `WAIT replicas timeout` after a write of `key` on `conn` (on a cluster,
/// to the master of `key`'s slot): `Ok` once that many replicas have every
/// write sent on the connection so far.
async fn replicated<F: Connect>(
    conn: &mut F::Conn,
    key: &str,
    replicas: u32,
    timeout: Duration,
    inner: &Inner,
) -> Result<(), StoreError> {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let acked = F::wait(conn, key, replicas, millis)
        .await
        .map_err(|e| redis_error(e, inner))?;
    if acked >= i64::from(replicas) {
        return Ok(());
    }
    Err(StoreError::unavailable(NotReplicated {
        wanted: replicas,
        acked: u32::try_from(acked.max(0)).unwrap_or(0),
        timeout,
    }))
}

/// A write the primary applied but fewer replicas than
/// [`RedisStoreBuilder::wait_for_replicas`] asks for acknowledged in time:
/// the cause of the [`StoreError::Unavailable`] it fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the write was applied on the Redis primary, but only {acked} of {wanted} replicas acknowledged it within {timeout:?}: it may be lost if the primary fails now; check the replicas")]
pub struct NotReplicated {
    /// Replicas asked for.
    pub wanted: u32,
    /// Replicas that acknowledged.
    pub acked: u32,
    /// How long the write waited.
    pub timeout: Duration,
}

/// A hash as name/value pairs, from a RESP2 array or a RESP3 map.
fn flat_bytes(value: Value) -> Result<Vec<Vec<u8>>, StoreError> {
    let bytes = |item: Value| match item {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        other => Err(unexpected("hash", &other)),
    };
    match value {
        Value::Array(items) | Value::Set(items) => items.into_iter().map(bytes).collect(),
        Value::Map(pairs) => pairs
            .into_iter()
            .flat_map(|(name, value)| [bytes(name), bytes(value)])
            .collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected("hash", &other)),
    }
}

/// What a command on a key of another type than a hash fails with.
const WRONG_TYPE: &str = "a session key holds another type than a hash";

fn redis_error(error: RedisError, inner: &Inner) -> StoreError {
    if error.code() == Some("WRONGTYPE") {
        return StoreError::Corrupt(WRONG_TYPE.to_owned());
    }
    if error.is_timeout() {
        return StoreError::Timeout(inner.command_timeout);
    }
    let failing_over = pool::failing_over(&error);
    let unreachable = failing_over
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || error.is_cluster_error();
    let hint = if failing_over {
        "a failover or resharding is in progress (a new primary is being elected or slots are moving); it clears by itself, check the Redis and Sentinel or cluster logs if it lasts"
    } else if unreachable {
        "check that Redis is running and reachable from this host and that the store URL is right"
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed {
        "check the user name and password in the store URL"
    } else {
        "check the Redis server log and its configuration (memory limit, ACLs, scripting allowed)"
    };
    let failure = BackendFailure::new("Redis", inner.target.clone(), hint, error);
    if unreachable {
        StoreError::unavailable(failure)
    } else {
        StoreError::backend(failure)
    }
}

fn pool_error(error: PoolError<RedisError>, inner: &Inner) -> StoreError {
    match error {
        PoolError::Backend(error) => redis_error(error, inner),
        PoolError::Timeout(TimeoutType::Wait) => StoreError::unavailable(format!(
            "every pooled connection to Redis at {} stayed busy past the wait timeout; raise pool_size or look for slow commands",
            inner.target
        )),
        PoolError::Timeout(TimeoutType::Create) => StoreError::unavailable(format!(
            "could not connect to Redis at {} within the connect timeout; check that it is running and reachable",
            inner.target
        )),
        PoolError::Timeout(TimeoutType::Recycle) => StoreError::Timeout(inner.command_timeout),
        other => StoreError::backend(format!("Redis connection pool at {}: {other}", inner.target)),
    }
}

impl RedisStoreBuilder {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            sentinel: None,
            #[cfg(feature = "redis-sentinel")]
            primary: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            health_check_interval: Duration::from_secs(30),
            durability: None,
            read_cache: None,
            #[cfg(feature = "redis-tls")]
            tls_root_certificate: None,
        }
    }

    /// Trusts only this root certificate (PEM) for `rediss://` connections,
    /// instead of the system's trust store: for a Redis whose certificate is
    /// signed by a private CA. Feature `redis-tls`.
    #[cfg(feature = "redis-tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// For a [Sentinel store](RedisStore::sentinel_builder): the primary's
    /// credentials and database, as a URL whose host is ignored
    /// (`redis://[user:password@]primary[/db]`). Default: none, database 0.
    #[cfg(feature = "redis-sentinel")]
    pub fn primary(mut self, url: impl Into<String>) -> Self {
        self.primary = Some(url.into());
        self
    }

    /// The key prefix (default `sessionkit:`); use one per application
    /// sharing a Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most connections the pool opens (default 16). Each connection is
    /// multiplexed; an operation holds one for a single round trip.
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

    /// How long Redis may take to answer one command (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// A pooled connection idle for longer than this is checked with one
    /// `PING` before reuse (default 30 s); a connection used more recently is
    /// handed out without any extra round trip. After any connection failure
    /// every older connection is checked once, whatever its idle time.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// Acknowledges a write (a session saved, destroyed or revoked) only once
    /// `replicas` replicas have it, waiting at most `timeout` (Redis'
    /// `WAIT` after each write, on the write's connection). Default: off;
    /// a write is acknowledged once the primary has it.
    ///
    /// When fewer replicas answer in time, the operation fails with
    /// [`StoreError::Unavailable`] whose cause is [`NotReplicated`]: the
    /// request gets the error handler's answer (503), although the write
    /// **was applied on the primary** and is what the next request sees,
    /// unless the primary fails before it reaches a replica. So an
    /// acknowledged logout or revocation survives the failure of the
    /// primary (and of `replicas - 1` replicas); an unacknowledged one may
    /// or may not. Redis' own documentation says it plainly: `WAIT` does not
    /// make Redis strongly consistent (a failover can still promote a
    /// replica that did not have the write, if one that had it is down).
    /// Each wait holds the shared multiplexed connection, so it adds its
    /// replication delay to the requests pipelined behind it.
    ///
    /// On a Cluster store, `WAIT` goes to the master that owns the written
    /// key's slot, on the connection the write went out on, and counts that
    /// master's replicas. A slot that moved between the write and the
    /// `WAIT` (a failover or resharding in that instant) can make the
    /// answer about another node: the write then fails as not replicated,
    /// or, if the cluster client had to reconnect, a `WAIT` on the new
    /// connection has no write to wait for and acknowledges at once.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.durability = Some((replicas, timeout));
        self
    }

    /// Serves repeated loads from memory, kept coherent by Redis itself
    /// (server-assisted client-side caching, RESP3 `CLIENT TRACKING`), for
    /// at most `max_sessions` sessions. Default: off (every load is one
    /// `HGETALL`). Single node only; see
    /// [the read cache](RedisStore#read-cache) for exactly how stale a
    /// cached load can be, what a lost connection does, and the memory
    /// bound.
    ///
    /// ```
    /// let store = sessionkit::RedisStore::builder("redis://127.0.0.1:6379")
    ///     .read_cache(100_000)
    ///     .build()?;
    /// // Nothing is connected yet, and nothing cached.
    /// let stats = store.read_cache_stats().expect("the cache is on");
    /// assert_eq!((stats.hits, stats.entries, stats.coherent), (0, 0, false));
    /// # Ok::<(), sessionkit::RedisConfigError>(())
    /// ```
    pub fn read_cache(mut self, max_sessions: usize) -> Self {
        self.read_cache = Some(max_sessions);
        self
    }

    /// Builds the store. Nothing is connected yet.
    ///
    /// # Errors
    /// [`RedisConfigError`] for a malformed URL, `rediss://` without the
    /// `redis-tls` feature, a zero pool size or timeout, no cluster node,
    /// or a read cache of zero sessions or on a Cluster or Sentinel store.
    pub fn build(self) -> Result<RedisStore, RedisConfigError> {
        if self.pool_size == 0 {
            return Err(RedisConfigError::Setting("pool_size must be at least 1"));
        }
        for (name, value) in [
            ("connect_timeout must not be zero", self.connect_timeout),
            ("wait_timeout must not be zero", self.wait_timeout),
            ("command_timeout must not be zero", self.command_timeout),
        ] {
            if value.is_zero() {
                return Err(RedisConfigError::Setting(name));
            }
        }
        if self.urls.is_empty() {
            return Err(RedisConfigError::NoNodes);
        }
        if let Some((replicas, timeout)) = self.durability {
            if replicas == 0 || timeout.is_zero() {
                return Err(RedisConfigError::Setting(
                    "wait_for_replicas needs at least 1 replica and a non-zero timeout",
                ));
            }
        }
        if let Some(max_sessions) = self.read_cache {
            if max_sessions == 0 {
                return Err(RedisConfigError::Setting(
                    "read_cache needs room for at least 1 session; to turn it off, leave read_cache out",
                ));
            }
            if self.cluster {
                return Err(RedisConfigError::ReadCacheNeedsOneNode {
                    topology: "Redis Cluster",
                });
            }
            if self.sentinel.is_some() {
                return Err(RedisConfigError::ReadCacheNeedsOneNode {
                    topology: "Redis Sentinel",
                });
            }
        }
        let mut infos = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            if url.starts_with("rediss://") {
                tls_ready()?;
            }
            infos.push(
                url.as_str()
                    .into_connection_info()
                    .map_err(RedisConfigError::Url)?,
            );
        }
        let target = infos
            .iter()
            .map(|i| i.addr().to_string())
            .collect::<Vec<_>>()
            .join(",");
        // One operation: wait for a connection, maybe connect, run one command,
        // and once more after a dead connection.
        let operation_timeout = self.wait_timeout
            + 2 * (self.connect_timeout + self.command_timeout)
            + self
                .durability
                .map_or(Duration::ZERO, |(_, t)| t + self.command_timeout)
            + Duration::from_millis(100);
        let mut tracking = None;
        let backend = if self.cluster {
            self.cluster_backend(infos)?
        } else if let Some(service) = &self.sentinel {
            self.sentinel_backend(infos, service)?
        } else {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.command_timeout));
            let info = infos.swap_remove(0);
            if let Some(max_sessions) = self.read_cache {
                // The same node, credentials and database, in RESP3 (push
                // messages on the connection that reads).
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                let resp3 = self.client(info.clone().set_redis_settings(settings))?;
                tracking = Some(tracking::Tracking::new(max_sessions, resp3, config.clone()));
            }
            let client = self.client(info)?;
            Backend::Single(self.pool(Single { client, config })?)
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                backend,
                prefix: self.prefix,
                target,
                command_timeout: self.command_timeout,
                operation_timeout,
                durability: self.durability,
                tracking,
            }),
        })
    }

    #[cfg(feature = "redis-tls")]
    fn client(&self, info: redis::ConnectionInfo) -> Result<redis::Client, RedisConfigError> {
        match &self.tls_root_certificate {
            Some(pem) => redis::Client::build_with_tls(info, self.tls_certificates(pem)),
            None => redis::Client::open(info),
        }
        .map_err(RedisConfigError::Url)
    }

    #[cfg(not(feature = "redis-tls"))]
    fn client(&self, info: redis::ConnectionInfo) -> Result<redis::Client, RedisConfigError> {
        redis::Client::open(info).map_err(RedisConfigError::Url)
    }

    #[cfg(feature = "redis-tls")]
    fn tls_certificates(&self, pem: &[u8]) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        }
    }

    fn pool<F: Connect>(&self, connect: F) -> Result<Pool<Manager<F>>, RedisConfigError> {
        Pool::builder(Manager::new(connect, self.health_check_interval))
            .max_size(self.pool_size)
            .wait_timeout(Some(self.wait_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RedisConfigError::Pool(e.to_string()))
    }

    #[cfg(feature = "redis-sentinel")]
    fn sentinel_backend(
        &self,
        sentinels: Vec<redis::ConnectionInfo>,
        service: &str,
    ) -> Result<Backend, RedisConfigError> {
        let mut node = redis::sentinel::SentinelNodeConnectionInfo::default();
        if let Some(url) = &self.primary {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(RedisConfigError::Url)?;
            node = node.set_redis_connection_info(info.redis_settings().clone());
        }
        // A String: the parameter is `String` without redis' TLS feature and
        // `impl AsRef<str>` with it.
        #[allow(clippy::unnecessary_to_owned)]
        let client = redis::sentinel::SentinelClient::build(
            sentinels,
            service.to_owned(),
            Some(node),
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(RedisConfigError::Url)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout));
        Ok(Backend::Sentinel(self.pool(pool::Sentinel {
            client: tokio::sync::Mutex::new(client),
            config,
        })?))
    }

    #[cfg(not(feature = "redis-sentinel"))]
    fn sentinel_backend(
        &self,
        _sentinels: Vec<redis::ConnectionInfo>,
        _service: &str,
    ) -> Result<Backend, RedisConfigError> {
        Err(RedisConfigError::SentinelDisabled)
    }

    #[cfg(feature = "redis-cluster")]
    fn cluster_backend(
        &self,
        infos: Vec<redis::ConnectionInfo>,
    ) -> Result<Backend, RedisConfigError> {
        let builder = deadpool_redis::cluster::ClusterClientBuilder::new(infos)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.command_timeout)
            .retries(2);
        #[cfg(feature = "redis-tls")]
        let builder = match &self.tls_root_certificate {
            Some(pem) => builder.certs(self.tls_certificates(pem)),
            None => builder,
        };
        let client = builder.build().map_err(RedisConfigError::Cluster)?;
        Ok(Backend::Cluster(self.pool(pool::Cluster(client))?))
    }

    #[cfg(not(feature = "redis-cluster"))]
    fn cluster_backend(&self, _: Vec<redis::ConnectionInfo>) -> Result<Backend, RedisConfigError> {
        Err(RedisConfigError::Setting(
            "Redis Cluster needs sessionkit's `redis-cluster` feature",
        ))
    }
}

#[cfg(feature = "redis-tls")]
fn tls_ready() -> Result<(), RedisConfigError> {
    // redis-rs builds its rustls config with the process-wide provider;
    // install ring unless the application installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(())
}

#[cfg(not(feature = "redis-tls"))]
fn tls_ready() -> Result<(), RedisConfigError> {
    Err(RedisConfigError::TlsDisabled)
}

impl SessionStore for RedisStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.load_record(id, now).await
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        match &write.principal {
            None => self.write_record(write, None).await,
            Some(change) => index::write(self, write, change).await,
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.delete_record(id).await
    }

    fn label(&self) -> &'static str {
        if self.is_cluster() {
            "redis-cluster"
        } else {
            "redis"
        }
    }

    fn principal_index(&self) -> Option<&dyn DynPrincipalIndex> {
        Some(self)
    }
}

impl PrincipalIndex for RedisStore {
    async fn principal_sessions(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<Vec<(SessionHandle, Record)>, StoreError> {
        index::list(self, principal, now).await
    }

    async fn revoke_principal_sessions(
        &self,
        principal: &Principal,
        take: Take<'_>,
        now: u64,
    ) -> Result<usize, StoreError> {
        index::revoke(self, principal, take, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_its_settings() {
        assert!(matches!(
            RedisStore::from_url("http://example"),
            Err(RedisConfigError::Url(_))
        ));
        assert!(matches!(
            RedisStore::builder("redis://127.0.0.1:6379")
                .pool_size(0)
                .build(),
            Err(RedisConfigError::Setting(_))
        ));
        assert!(matches!(
            RedisStore::builder("redis://127.0.0.1:6379")
                .command_timeout(Duration::ZERO)
                .build(),
            Err(RedisConfigError::Setting(_))
        ));
        let builder = RedisStore::builder("redis://user:secret@127.0.0.1:6390/2").prefix("app:");
        assert!(!format!("{builder:?}").contains("secret"));
        let store = builder.build().unwrap();
        assert!(!store.is_cluster());
        let debug = format!("{store:?}");
        assert!(debug.contains("127.0.0.1:6390"), "{debug}");
        assert!(
            !debug.contains("secret"),
            "no credentials in Debug: {debug}"
        );
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        assert!(store.key_for(&id).starts_with("app:"));
    }

    #[test]
    fn failover_answers_are_unavailable_not_backend_failures() {
        let store = RedisStore::from_url("redis://127.0.0.1:6390").unwrap();
        let reply = |line: &str| {
            redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
                .unwrap()
                .extract_error()
                .unwrap_err()
        };
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
        ] {
            let error = redis_error(reply(line), &store.inner);
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{line}: {error:?}"
            );
        }
        assert!(matches!(
            redis_error(reply("ERR something else"), &store.inner),
            StoreError::Backend(_)
        ));
    }

    #[cfg(not(feature = "redis-tls"))]
    #[test]
    fn rediss_needs_the_tls_feature() {
        let error = RedisStore::from_url("rediss://127.0.0.1:6380").unwrap_err();
        assert!(matches!(error, RedisConfigError::TlsDisabled));
        assert!(error.to_string().contains("redis-tls"));
    }

    #[cfg(feature = "redis-tls")]
    #[test]
    fn rediss_builds_with_the_tls_feature() {
        assert!(RedisStore::from_url("rediss://127.0.0.1:6380").is_ok());
    }

    #[cfg(feature = "redis-cluster")]
    #[test]
    fn cluster_needs_a_node() {
        assert!(matches!(
            RedisStore::cluster_builder(Vec::<String>::new()).build(),
            Err(RedisConfigError::NoNodes)
        ));
        let store =
            RedisStore::cluster_builder(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
                .build()
                .unwrap();
        assert!(store.is_cluster());
        let durable = RedisStore::cluster_builder(["redis://127.0.0.1:7000"])
            .wait_for_replicas(1, Duration::from_millis(100))
            .build();
        assert!(durable.is_ok(), "WAIT is routed to the key's master");
    }
}

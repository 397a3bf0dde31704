//! What a Redis failover costs and loses: run with
//! `cargo run --release -p sessionkit-examples --example failover_figures`
//! (starts its own primary, two replicas and three sentinels, then Redis
//! Clusters of three masters with a replica each, on loopback;
//! `redis-server` must be on PATH; about 90 s).
//!
//! The gateway app runs in-process on a `RedisStore` (Sentinel, or Cluster)
//! behind the circuit breaker. 8 clients loop: log in, add two cart items, then log
//! out (every other session) or leave the session logged in and start a new
//! one; each step counts as acknowledged when it answered 200. At 2 s the
//! primary is killed (`kill -9`); the sentinels promote a replica while the
//! clients go on; the load stops 8 s after the failure began. Then every acknowledged
//! write is checked: a login's session is still logged in (unless its own
//! later logout was acknowledged), an item is still in its cart, a logged-out
//! session is still logged out. Printed as a Markdown table: downtime (the
//! longest time without a successful request), requests failed, and for each
//! kind of write how many were acknowledged and how many were lost — once
//! without the durability option and once with `wait_for_replicas(1, 500 ms)`;
//! then the same with the replicas frozen for 1 s before the kill (a
//! replication delay: what asynchronous replication can lose). On the
//! Cluster (`cluster-node-timeout 1000`), one master is killed, without and
//! with `wait_for_replicas(1, 500 ms)` (`WAIT` on the key's master), and a
//! planned `CLUSTER FAILOVER` of one master is asked for instead. A Cluster
//! master holds a third of the slots, so the other sessions are served on:
//! besides the downtime of the whole app, stderr shows the longest time one
//! client went without a success.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use futures_util::future::join_all;
use sessionkit::breaker::CircuitBreaker;
use sessionkit::RedisStore;
use sessionkit_examples::gateway::{gateway_app, Gateway, GatewayConfig};
use sessionkit_tests::redis_server::{RedisClusterHa, RedisSentinel};

const CLIENTS: usize = 8;
const KILL_AT: Duration = Duration::from_secs(2);
const RUN_AFTER_KILL: Duration = Duration::from_secs(8);

/// One acknowledged write, and what must hold afterwards.
enum Acked {
    /// This session is logged in.
    Login(Cookie<'static>),
    /// This item is in this session's cart.
    Item(Cookie<'static>, String),
    /// This session is logged out: its cookie is no longer logged in.
    Logout(Cookie<'static>),
}

struct Figures {
    failed: usize,
    /// When each request that answered 200 ended.
    successes: Vec<Duration>,
    /// The same, per client.
    per_client: Vec<Vec<Duration>>,
    acked: Vec<Acked>,
}

impl Default for Figures {
    fn default() -> Self {
        Self {
            failed: 0,
            successes: Vec::new(),
            per_client: vec![Vec::new(); CLIENTS],
            acked: Vec::new(),
        }
    }
}

/// The failure a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Sentinel: the primary killed (`kill -9`), the replicas lagging by
    /// this much first (frozen) or not.
    PrimaryKilled(Option<Duration>),
    /// Cluster: one master killed (`kill -9`).
    MasterKilled,
    /// Cluster: `CLUSTER FAILOVER` of one master (planned).
    ClusterFailover,
}

impl Failure {
    fn label(self) -> String {
        match self {
            Self::PrimaryKilled(None) => "primary killed".to_owned(),
            Self::PrimaryKilled(Some(lag)) => format!(
                "replicas frozen {} ms, then primary killed",
                lag.as_millis()
            ),
            Self::MasterKilled => "Cluster: one master killed".to_owned(),
            Self::ClusterFailover => "Cluster: `CLUSTER FAILOVER` (planned)".to_owned(),
        }
    }
}

/// The Redis set-up a run starts.
enum Setup {
    Sentinel(RedisSentinel),
    Cluster(RedisClusterHa),
}

impl Setup {
    fn start(failure: Failure) -> Self {
        match failure {
            Failure::PrimaryKilled(_) => Self::Sentinel(RedisSentinel::start()),
            Failure::MasterKilled | Failure::ClusterFailover => {
                Self::Cluster(RedisClusterHa::start())
            }
        }
    }

    fn builder(&self) -> sessionkit::RedisStoreBuilder {
        match self {
            Self::Sentinel(set) => {
                RedisStore::sentinel_builder(set.sentinel_urls(), RedisSentinel::SERVICE)
            }
            Self::Cluster(cluster) => RedisStore::cluster_builder(cluster.urls()),
        }
    }

    /// Makes `failure` happen and waits (bounded) until it is over: a new
    /// primary, or master of the slots, serves.
    fn fail(&mut self, failure: Failure) {
        match (self, failure) {
            (Self::Sentinel(set), Failure::PrimaryKilled(None)) => {
                set.kill_primary();
            }
            (Self::Sentinel(set), Failure::PrimaryKilled(Some(lag))) => {
                set.kill_primary_while_replicas_lag(lag);
            }
            (Self::Cluster(cluster), Failure::MasterKilled) => {
                let master = cluster.masters()[0];
                cluster.kill_master(master);
            }
            (Self::Cluster(cluster), Failure::ClusterFailover) => {
                let master = cluster.masters()[0];
                cluster.failover(master);
            }
            (_, failure) => unreachable!("{failure:?} on the wrong set-up"),
        }
    }
}

fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session_id" && !c.value().is_empty())
        .map(Cookie::into_owned)
}

async fn run(durable: bool, failure: Failure) -> String {
    let set = tokio::task::spawn_blocking(move || Setup::start(failure))
        .await
        .expect("the Redis set-up");
    let mut builder = set
        .builder()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .wait_timeout(Duration::from_millis(300));
    if durable {
        builder = builder.wait_for_replicas(1, Duration::from_millis(500));
    }
    let store = CircuitBreaker::new(builder.build().expect("store"));
    let gateway =
        Gateway::new(&GatewayConfig::default(), store, "http://127.0.0.1:1").expect("gateway");
    let app = test::init_service(gateway_app(gateway)).await;
    let set = Arc::new(Mutex::new(set));
    let figures = Rc::new(RefCell::new(Figures::default()));
    let start = Instant::now();
    let killed_at = Rc::new(RefCell::new(None::<Duration>));

    let clients = (0..CLIENTS).map(|client| {
        let (app, figures, killed_at) = (&app, Rc::clone(&figures), Rc::clone(&killed_at));
        async move {
            let mut step = 0usize;
            let mut cookie: Option<Cookie<'static>> = None;
            loop {
                let end = killed_at.borrow().map(|k| k + RUN_AFTER_KILL);
                if end.is_some_and(|end| start.elapsed() > end) {
                    break;
                }
                if step % 4 == 3 && (step / 4) % 2 == 1 {
                    // Every other session is kept logged in with its cart
                    // (checked at the end); the client starts a new one.
                    cookie = None;
                    step += 1;
                    continue;
                }
                let mut req = match step % 4 {
                    0 => TestRequest::post()
                        .uri("/login")
                        .set_form([("email", "user@example.com"), ("password", "password")]),
                    1 | 2 => TestRequest::post()
                        .uri("/cart/add")
                        .set_form([("item_id", format!("c{client}-s{step}"))]),
                    _ => TestRequest::post().uri("/logout"),
                };
                if let Some(c) = &cookie {
                    req = req.cookie(c.clone());
                }
                let res = test::call_service(app, req.to_request()).await;
                let now = start.elapsed();
                let ok = res.status() == StatusCode::OK;
                if ok {
                    if let Some(new) = session_cookie(&res) {
                        cookie = Some(new);
                    }
                    let mut f = figures.borrow_mut();
                    f.successes.push(now);
                    f.per_client[client].push(now);
                    let held = cookie.clone().expect("a session after a 200");
                    f.acked.push(match step % 4 {
                        0 => Acked::Login(held),
                        1 | 2 => Acked::Item(held, format!("c{client}-s{step}")),
                        _ => Acked::Logout(held),
                    });
                    step += 1;
                } else {
                    figures.borrow_mut().failed += 1;
                    // A client that got an error waits a little, as browsers do.
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    });
    let chaos = {
        let (set, killed_at) = (Arc::clone(&set), Rc::clone(&killed_at));
        async move {
            actix_web::rt::time::sleep(KILL_AT).await;
            *killed_at.borrow_mut() = Some(start.elapsed());
            // The kill and the wait for the promotion run off this thread:
            // the clients go on meanwhile.
            tokio::task::spawn_blocking(move || {
                set.lock().expect("the set-up").fail(failure);
            })
            .await
            .expect("the failover");
        }
    };
    futures_util::future::join(join_all(clients), chaos).await;
    eprintln!("failover_figures: load done after {:?}", start.elapsed());

    // Check every acknowledged write against what the store holds now:
    // one look per session, at its login and its cart. Through an app on a
    // store of its own, without the durability option (a load may touch the
    // session, and that write must not fail for want of a replica: what is
    // checked is what Redis holds) and without the breaker.
    let figures = std::mem::take(&mut *figures.borrow_mut());
    let check_store = set
        .lock()
        .expect("the set-up")
        .builder()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .wait_timeout(Duration::from_millis(300))
        .build()
        .expect("store");
    let checker = test::init_service(gateway_app(
        Gateway::new(&GatewayConfig::default(), check_store, "http://127.0.0.1:1")
            .expect("gateway"),
    ))
    .await;
    let unverified = std::cell::Cell::new(0usize);
    let look = |uri: &'static str, cookie: Cookie<'static>| {
        let (checker, unverified) = (&checker, &unverified);
        async move {
            for _ in 0..50 {
                let res = test::call_service(
                    checker,
                    TestRequest::get()
                        .uri(uri)
                        .cookie(cookie.clone())
                        .to_request(),
                )
                .await;
                let status = res.status();
                let body = String::from_utf8_lossy(&test::read_body(res).await).into_owned();
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    return (status, body);
                }
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            unverified.set(unverified.get() + 1);
            (StatusCode::SERVICE_UNAVAILABLE, String::new())
        }
    };
    let logged_out: HashSet<&str> = figures
        .acked
        .iter()
        .filter_map(|a| match a {
            Acked::Logout(c) => Some(c.value()),
            _ => None,
        })
        .collect();
    let mut kept: HashMap<&str, (&Cookie<'static>, Vec<&str>)> = HashMap::new();
    for acked in &figures.acked {
        match acked {
            Acked::Login(c) | Acked::Item(c, _) if logged_out.contains(c.value()) => {}
            Acked::Login(c) => {
                kept.entry(c.value()).or_insert((c, Vec::new()));
            }
            Acked::Item(c, item) => kept
                .entry(c.value())
                .or_insert((c, Vec::new()))
                .1
                .push(item),
            Acked::Logout(_) => {}
        }
    }
    let (mut logins, mut items, mut logouts) = ((0, 0), (0, 0), (logged_out.len(), 0));
    for (cookie, wanted) in kept.values() {
        logins.0 += 1;
        let (status, _) = look("/dashboard", (*cookie).clone()).await;
        if !logged_in(status) {
            logins.1 += 1;
        }
        let (_, body) = look("/cart", (*cookie).clone()).await;
        items.0 += wanted.len();
        items.1 += wanted.iter().filter(|item| !body.contains(**item)).count();
    }
    for value in &logged_out {
        let cookie = Cookie::new("session_id", (*value).to_owned());
        let (status, _) = look("/dashboard", cookie).await;
        if logged_in(status) {
            logouts.1 += 1;
        }
    }
    eprintln!(
        "failover_figures: checked after {:?}; {} looks still 503 after 50 tries (counted as lost)",
        start.elapsed(),
        unverified.get()
    );
    // Downtime: the longest time without any successful request, from the
    // start of the failure on.
    let from = killed_at.borrow().unwrap_or_default();
    let downtime = longest_gap(&figures.successes, from).map_or_else(
        || "never recovered".to_owned(),
        |d| format!("{} ms", d.as_millis()),
    );
    let one_client = figures
        .per_client
        .iter()
        .filter_map(|ends| longest_gap(ends, from))
        .max()
        .unwrap_or_default();
    eprintln!(
        "failover_figures: {}: the longest time one client went without a success: {} ms",
        failure.label(),
        one_client.as_millis()
    );
    format!(
        "| {} | {} | {downtime} | {} | {} / {} lost | {} / {} lost | {} / {} undone |",
        failure.label(),
        if durable {
            "wait_for_replicas(1, 500 ms)"
        } else {
            "none (default)"
        },
        figures.failed,
        logins.0,
        logins.1,
        items.0,
        items.1,
        logouts.0,
        logouts.1,
    )
}

/// The longest time between two successes (`ends`, in any order) from
/// `from` on; `None` with fewer than two.
fn longest_gap(ends: &[Duration], from: Duration) -> Option<Duration> {
    let mut ends = ends.to_vec();
    ends.sort();
    ends.windows(2)
        .filter(|w| w[1] > from)
        .map(|w| w[1] - w[0].max(from))
        .max()
}

/// Whether `/dashboard` answered as for a logged-in session: it passed the
/// login check and was forwarded (the downstream address is a closed port,
/// so a forwarded request answers 502), rather than refused with 401.
fn logged_in(status: StatusCode) -> bool {
    status != StatusCode::UNAUTHORIZED && status != StatusCode::SERVICE_UNAVAILABLE
}

#[actix_web::main]
async fn main() {
    let mut rows = Vec::new();
    for lag in [None, Some(Duration::from_millis(1000))] {
        for durable in [false, true] {
            rows.push(run(durable, Failure::PrimaryKilled(lag)).await);
        }
    }
    for durable in [false, true] {
        rows.push(run(durable, Failure::MasterKilled).await);
    }
    rows.push(run(false, Failure::ClusterFailover).await);
    println!("| failure | durability | downtime | requests failed | logins (acked / lost) | cart items (acked / lost) | logouts (acked / undone) |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

//! Sessions per user: what a principal costs `GET /counter`, and how long
//! listing and revoking all sessions of a user with 1,000 sessions take, on
//! sessionkit's `MemoryStore` and `RedisStore` (its own `redis-server` on a
//! free port).
//!
//! ```sh
//! cargo run --release --manifest-path session-bench/Cargo.toml --bin bench-per-user
//! REQUESTS=20000 SESSIONS=1000 cargo run --release --manifest-path session-bench/Cargo.toml --bin bench-per-user
//! ```
//!
//! `/counter` goes through actix-web's service stack in process
//! (`actix_web::test::call_service`: the middleware, the extractor, the
//! handler, the commit; no sockets), one request at a time with the session
//! cookie, so the figure is the session's own cost per request. Redis
//! commands per request are `INFO commandstats` deltas (commands run inside
//! scripts included). Prints a markdown table.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web, App};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use session_bench::measure::RedisInfo;
use sessionkit::store::{DynSessionStore, SessionStore};
use sessionkit::{Config, MemoryStore, RedisStore, SessionData, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};

/// A `/counter` session that may belong to a user.
#[derive(SessionData, Default, Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// The logged-in user.
    #[session(principal)]
    pub user_id: Option<u64>,
    /// Visits so far.
    pub visits: u32,
}

async fn counter(session: Session<Account>) -> String {
    session
        .update_visits(|visits| {
            *visits += 1;
            *visits
        })
        .to_string()
}

async fn login(session: Session<Account>, user: web::Path<u64>) -> &'static str {
    if session.regenerate().is_err() {
        return "no id";
    }
    session.set_user_id(Some(user.into_inner()));
    "logged in"
}

fn manager(store: impl SessionStore) -> Result<SessionManager<Account>> {
    let config = Config::builder()
        .cookie_secure(false)
        .build()
        .context("the config")?;
    SessionManager::builder(store)
        .config(config)
        .build()
        .context("the manager")
}

/// Interleaved rounds per `/counter` case: the machine is shared, so one
/// run of a case can land on a busy moment; the median of three is steadier.
const ROUNDS: usize = 3;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a number, got {value:?}")),
        Err(_) => Ok(default),
    }
}

/// The bench's own `redis-server`, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (is it on the PATH?)")?;
        let redis = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.command("PING").is_err() {
            ensure!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One inline command; the raw reply (enough for `PING` and `INFO`).
    fn command(&self, command: &str) -> Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut chunk)?;
            ensure!(read > 0, "redis-server closed the connection");
            reply.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&reply);
            if text.starts_with('+') && text.ends_with("\r\n") {
                return Ok(text.into_owned());
            }
            if let Some(rest) = text.strip_prefix('$') {
                let (len, body) = rest.split_once("\r\n").context("a bulk reply")?;
                let len: usize = len.parse().context("a bulk length")?;
                if body.len() >= len + 2 {
                    return Ok(body[..len].to_owned());
                }
            } else if text.starts_with('-') {
                bail!("redis-server: {}", text.trim_end());
            }
        }
    }

    fn info(&self) -> Result<RedisInfo> {
        RedisInfo::parse(&self.command("INFO commandstats")?)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session cookie a response sets, if any.
fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<String> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session_id" && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// µs per `/counter` request for a session with or without a user, and the
/// Redis commands each sent (when `redis` is given).
async fn counter_cost(
    store: impl SessionStore,
    with_user: bool,
    requests: u64,
    redis: Option<&Redis>,
) -> Result<(f64, Option<f64>)> {
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager(store)?))
            .route("/counter", web::get().to(counter))
            .route("/login/{user}", web::post().to(login)),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let mut sid = session_cookie(&res).context("a session cookie")?;
    if with_user {
        let req = test::TestRequest::post()
            .uri("/login/7")
            .insert_header(("cookie", format!("session_id={sid}")))
            .to_request();
        let res = test::call_service(&app, req).await;
        sid = session_cookie(&res).context("a new id at login")?;
    }
    // Warm-up (scripts cached, connections made), then measure.
    for _ in 0..requests.min(500) {
        let req = test::TestRequest::get()
            .uri("/counter")
            .insert_header(("cookie", format!("session_id={sid}")))
            .to_request();
        app.call(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let before = redis.map(Redis::info).transpose()?;
    let start = Instant::now();
    for _ in 0..requests {
        let req = test::TestRequest::get()
            .uri("/counter")
            .insert_header(("cookie", format!("session_id={sid}")))
            .to_request();
        let res = app.call(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(
            res.status().is_success(),
            "/counter answered {}",
            res.status()
        );
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / requests as f64;
    let commands = match (redis, before) {
        (Some(redis), Some(before)) => {
            let calls: u64 = redis.info()?.calls_since(&before).values().sum();
            Some(calls as f64 / requests as f64)
        }
        _ => None,
    };
    Ok((micros, commands))
}

/// Creates `sessions` sessions of one user, then times listing them and
/// revoking them all: (ms to list, ms to revoke, Redis commands of the revoke).
async fn revoke_cost(
    store: impl SessionStore,
    sessions: u64,
    redis: Option<&Redis>,
) -> Result<(f64, f64, Option<u64>)> {
    let m = manager(store)?;
    for _ in 0..sessions {
        let s = m.create()?;
        s.set_user_id(Some(99));
        s.save().await?;
    }
    let start = Instant::now();
    let listed = m.list_sessions(&99u64, None).await?.len();
    let list_ms = start.elapsed().as_secs_f64() * 1e3;
    ensure!(listed as u64 == sessions, "listed {listed} of {sessions}");
    let before = redis.map(Redis::info).transpose()?;
    let start = Instant::now();
    let revoked = m.revoke_all_sessions(&99u64).await?;
    let revoke_ms = start.elapsed().as_secs_f64() * 1e3;
    ensure!(
        revoked as u64 == sessions,
        "revoked {revoked} of {sessions}"
    );
    let commands = match (redis, before) {
        (Some(redis), Some(before)) => Some(redis.info()?.calls_since(&before).values().sum()),
        _ => None,
    };
    ensure!(
        m.list_sessions(&99u64, None).await?.is_empty(),
        "sessions left after revoke-all"
    );
    Ok((list_ms, revoke_ms, commands))
}

fn main() -> Result<()> {
    let requests = env_number("REQUESTS", 20_000)?;
    let sessions = env_number("SESSIONS", 1_000)?;
    let redis = Redis::start()?;
    actix_web::rt::System::new().block_on(async {
        let redis_store = || -> Result<std::sync::Arc<dyn DynSessionStore>> {
            let store = RedisStore::builder(redis.url())
                .prefix(format!("bench:{}:", Instant::now().elapsed().as_nanos()))
                .build()
                .context("the Redis store")?;
            Ok(std::sync::Arc::new(store))
        };
        println!(
            "### `/counter` with and without a principal ({requests} requests one at a time, median of {ROUNDS} interleaved rounds)\n"
        );
        println!("| store | session | µs per request | Redis commands per request |");
        println!("|---|---|---|---|");
        let cases = [
            ("memory", "anonymous", false),
            ("memory", "logged in (principal set)", true),
            ("Redis", "anonymous", false),
            ("Redis", "logged in (principal set)", true),
        ];
        let mut micros = vec![Vec::new(); cases.len()];
        let mut commands = vec![None; cases.len()];
        for _ in 0..ROUNDS {
            for (k, (store, _, with_user)) in cases.iter().enumerate() {
                let (us, sent) = if *store == "memory" {
                    counter_cost(MemoryStore::new(), *with_user, requests, None).await?
                } else {
                    counter_cost(redis_store()?, *with_user, requests, Some(&redis)).await?
                };
                micros[k].push(us);
                commands[k] = sent;
            }
        }
        for (k, (store, label, _)) in cases.iter().enumerate() {
            let sent = commands[k].map_or("–".to_owned(), |c| format!("{c:.2}"));
            println!("| {store} | {label} | {:.2} | {sent} |", median(&mut micros[k]));
        }
        println!("\n### One user with {sessions} sessions: list them, then revoke all\n");
        println!("| store | list (ms) | revoke all (ms) | Redis commands of the revoke |");
        println!("|---|---|---|---|");
        let (list, revoke, _) = revoke_cost(MemoryStore::new(), sessions, None).await?;
        println!("| memory | {list:.2} | {revoke:.2} | – |");
        let (list, revoke, commands) = revoke_cost(redis_store()?, sessions, Some(&redis)).await?;
        let commands = commands.map_or("–".to_owned(), |c| c.to_string());
        println!("| Redis | {list:.2} | {revoke:.2} | {commands} |");
        Ok(())
    })
}

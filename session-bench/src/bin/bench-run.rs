//! Load-benchmark orchestrator: `bench-run` (configured through the
//! environment, see [`Config::from_env`]).
//!
//! For every round and every mode (interleaved, with the start position
//! rotating each round) it starts `bench-server` pinned to one core, checks
//! that the session cookie is set on the first `/counter` and accepted
//! afterwards, then for each route warms up with `wrk` and runs a measured
//! `wrk` pinned to the other core. Around each measured run it samples the
//! server's utime+stime from `/proc/<pid>/stat` and, for the Redis modes, the
//! private `redis-server`'s `INFO cpu commandstats`; for the PostgreSQL modes
//! the private PostgreSQL's CPU time (postmaster and backends, from `/proc`)
//! and the statements clients sent (`pg_stat_statements`). The report (medians over
//! the rounds, ratios to bare actix-web from the same run) is written as
//! markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use session_bench::measure::{self, Census, RedisInfo, WrkResult};
use session_bench::postgres::{CpuSample, PostgresServer};
use session_bench::{Mode, Route};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// How long a server or redis-server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Socket timeout for the benchmark's own small requests.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the MONITOR census may take to see its end marker.
const CENSUS_TIMEOUT: Duration = Duration::from_secs(20);
/// The `ECHO` argument that ends a MONITOR census.
const CENSUS_END: &str = "session-bench-census-end";
/// The database every PostgreSQL mode uses (each mode has its own tables).
const POSTGRES_DATABASE: &str = "bench";

fn mode_index(mode: Mode) -> usize {
    Mode::ALL
        .iter()
        .position(|m| *m == mode)
        .unwrap_or(usize::MAX)
}

fn route_index(route: Route) -> usize {
    Route::ALL
        .iter()
        .position(|r| *r == route)
        .unwrap_or(usize::MAX)
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    std::fs::create_dir_all(&config.log_dir)
        .with_context(|| format!("creating {}", config.log_dir.display()))?;
    let script = config.log_dir.join("session-bench.lua");
    std::fs::write(&script, measure::WRK_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let clock_ticks = clock_ticks_per_second();

    eprintln!(
        "bench-run: modes {}, {} round(s), {} s per run after {} s warm-up, {} connections",
        config
            .modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        config.rounds,
        config.duration_secs,
        config.warmup_secs,
        config.connections,
    );

    let redis = if config.modes.iter().any(|m| m.uses_redis()) {
        Some(RedisServer::start(&config)?)
    } else {
        None
    };
    let cluster = if config.modes.iter().any(|m| m.uses_redis_cluster()) {
        Some(RedisCluster::start(&config)?)
    } else {
        None
    };
    let postgres = if config.modes.iter().any(|m| m.uses_postgres()) {
        let server = PostgresServer::start(&config.postgres_cpu)?;
        server.recreate_database(POSTGRES_DATABASE)?;
        eprintln!(
            "bench-run: {} on {}",
            server.version(),
            server.url(POSTGRES_DATABASE)
        );
        Some(server)
    } else {
        None
    };

    let bench = Bench {
        config: &config,
        script: &script,
        clock_ticks,
        redis: redis.as_ref(),
        cluster: cluster.as_ref(),
        postgres: postgres.as_ref(),
    };
    if let Some(scale) = &config.scale {
        return scale_run::run(&bench, scale);
    }
    let mut samples = Vec::new();
    let mut contention = Vec::new();
    let mut censuses: BTreeMap<(usize, usize), Census> = BTreeMap::new();
    let mut failures = Vec::new();
    for round in 0..config.rounds {
        for offset in 0..config.modes.len() {
            let mode = config.modes[(offset + round) % config.modes.len()];
            eprintln!("round {}/{}: {mode}", round + 1, config.rounds);
            match bench.run_mode(mode, round) {
                Ok((mut mode_samples, mut mode_contention, mode_censuses)) => {
                    samples.append(&mut mode_samples);
                    contention.append(&mut mode_contention);
                    for (route, census) in mode_censuses {
                        censuses.insert((mode_index(mode), route_index(route)), census);
                    }
                }
                Err(err) => {
                    eprintln!("  FAILED: {err:#}");
                    failures.push(format!("round {}, {mode}: {err:#}", round + 1));
                }
            }
        }
    }
    drop(redis);
    let mut facts = environment(&config);
    if let Some(postgres) = &postgres {
        facts.push(("postgres".into(), postgres.version()));
    }
    drop(postgres);

    let report = render_report(&config, &samples, &contention, &censuses, &failures, &facts);
    if let Some(parent) = config.out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&config.out, &report)
        .with_context(|| format!("writing {}", config.out.display()))?;
    println!("{report}");
    eprintln!("bench-run: report written to {}", config.out.display());
    ensure!(
        failures.is_empty(),
        "{} mode run(s) failed; see the report",
        failures.len()
    );
    Ok(())
}

/// Settings, all from environment variables.
#[derive(Debug)]
struct Config {
    quick: bool,
    rounds: usize,
    duration_secs: u64,
    warmup_secs: u64,
    connections: u32,
    modes: Vec<Mode>,
    out: PathBuf,
    log_dir: PathBuf,
    server_bin: PathBuf,
    wrk: String,
    server_cpu: String,
    client_cpu: String,
    redis_cpu: String,
    postgres_cpu: String,
    max_other_load: f64,
    retries: u32,
    census_requests: u64,
    /// `SCALE=1`: the scale run's settings; `None` for the main run.
    scale: Option<scale_run::Settings>,
}

impl Config {
    /// `QUICK=1` (1 round of 2 s runs), `ROUNDS` (3), `DURATION` (5 s),
    /// `WARMUP` (1 s), `CONNECTIONS` (32), `MODES` (comma-separated, default
    /// every available mode; `postgres` stands for the PostgreSQL modes),
    /// `OUT` (RESULTS.md, or target/RESULTS-quick.md in
    /// quick mode), `BENCH_SERVER`, `WRK`, `SERVER_CPU` (0), `CLIENT_CPU` (1),
    /// `REDIS_CPU` (1), `POSTGRES_CPU` (1), `MAX_OTHER_LOAD` (15 %: a run during which other
    /// work kept the server's CPU busier than this is measured again),
    /// `RETRIES` (1, 0 in quick mode: at most this many repeats per run; the
    /// least contended attempt is kept), `CENSUS_REQUESTS` (100: sequential
    /// requests per route under Redis `MONITOR`, once per Redis mode).
    /// `SCALE=1` runs the scale curves instead (see [`scale_run`]): `MODES`
    /// then defaults to [`Mode::SCALE_DEFAULT`] and `OUT` to SCALE.md
    /// (target/SCALE-quick.md in quick mode).
    fn from_env() -> Result<Config> {
        let quick = env_or("QUICK", "0")? != "0";
        let rounds: usize = parse_env("ROUNDS", if quick { 1 } else { 3 })?;
        let duration_secs: u64 = parse_env("DURATION", if quick { 2 } else { 5 })?;
        let warmup_secs: u64 = parse_env("WARMUP", 1)?;
        let connections: u32 = parse_env("CONNECTIONS", 32)?;
        ensure!((1..=20).contains(&rounds), "ROUNDS must be 1..=20");
        ensure!(
            (1..=120).contains(&duration_secs),
            "DURATION must be 1..=120 seconds"
        );
        ensure!(
            (1..=60).contains(&warmup_secs),
            "WARMUP must be 1..=60 seconds"
        );
        ensure!(
            (1..=1024).contains(&connections),
            "CONNECTIONS must be 1..=1024"
        );
        let max_other_load: f64 = parse_env("MAX_OTHER_LOAD", 15.0)?;
        let retries: u32 = parse_env("RETRIES", if quick { 0 } else { 1 })?;
        ensure!(retries <= 5, "RETRIES must be 0..=5");
        let census_requests: u64 = parse_env("CENSUS_REQUESTS", 100)?;
        ensure!(
            (1..=10_000).contains(&census_requests),
            "CENSUS_REQUESTS must be 1..=10000"
        );

        let scale = if env_or("SCALE", "0")? != "0" {
            Some(scale_run::Settings::from_env()?)
        } else {
            None
        };
        let named: Option<Vec<Mode>> = match std::env::var("MODES") {
            Ok(list) if !list.trim().is_empty() => {
                let mut modes = Vec::new();
                for name in list.split(',').map(str::trim) {
                    if name == "postgres" {
                        modes.extend(Mode::POSTGRES);
                    } else {
                        modes.push(name.parse::<Mode>()?);
                    }
                }
                Some(modes)
            }
            _ => None,
        };
        let mut modes = match (&named, &scale) {
            (Some(named), _) => named.clone(),
            (None, Some(_)) => Mode::SCALE_DEFAULT.to_vec(),
            (None, None) => Mode::available(),
        };
        for mode in &modes {
            ensure!(
                mode.is_available(),
                "mode {mode} is not built into bench-server yet"
            );
            if scale.is_some() {
                ensure!(
                    mode.can_preload(),
                    "mode {mode} cannot be preloaded with sessions, so it is not in the scale run"
                );
            }
        }
        // The ratios need bare actix-web measured in the same run.
        if scale.is_none() && !modes.contains(&Mode::Bare) {
            modes.insert(0, Mode::Bare);
        }

        let default_out = match (&scale, quick) {
            (Some(_), true) => Path::new(MANIFEST_DIR).join("target/SCALE-quick.md"),
            (Some(_), false) => Path::new(MANIFEST_DIR).join("SCALE.md"),
            (None, true) => Path::new(MANIFEST_DIR).join("target/RESULTS-quick.md"),
            (None, false) => Path::new(MANIFEST_DIR).join("RESULTS.md"),
        };
        let out = std::env::var_os("OUT").map_or(default_out, PathBuf::from);
        let server_bin = match std::env::var_os("BENCH_SERVER") {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()
                .context("locating bench-run")?
                .with_file_name("bench-server"),
        };
        ensure!(
            server_bin.is_file(),
            "{} does not exist; build with `cargo build --release --bins`",
            server_bin.display()
        );

        Ok(Config {
            quick,
            rounds,
            duration_secs,
            warmup_secs,
            connections,
            modes,
            out,
            log_dir: Path::new(MANIFEST_DIR).join("target/bench-logs"),
            server_bin,
            wrk: env_or("WRK", "wrk")?,
            server_cpu: env_or("SERVER_CPU", "0")?,
            client_cpu: env_or("CLIENT_CPU", "1")?,
            redis_cpu: env_or("REDIS_CPU", "1")?,
            postgres_cpu: env_or("POSTGRES_CPU", "1")?,
            max_other_load,
            retries,
            census_requests,
            scale,
        })
    }
}

fn env_or(name: &str, default: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
        Err(err) => Err(err).with_context(|| format!("reading {name}")),
    }
}

fn parse_env<T>(name: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?} is not a valid number")),
        _ => Ok(default),
    }
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, else 100).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding an ephemeral port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> Result<u16> {
    for _ in 0..200 {
        let port = free_port()?;
        if port <= 55_535 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port pair for a Redis Cluster node after 200 tries")
}

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    fn spawn(mut command: Command, what: impl Into<String>) -> Result<ChildGuard> {
        let what = what.into();
        let child = command
            .spawn()
            .with_context(|| format!("starting {what}: {command:?}"))?;
        Ok(ChildGuard { child, what })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited early: {status}", self.what),
            Err(err) => Err(err).with_context(|| format!("polling {}", self.what)),
        }
    }

    /// Waits until `port` on 127.0.0.1 accepts connections.
    fn wait_for_port(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while Instant::now() < deadline {
            self.ensure_running()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not listen on {addr} within {timeout:?}", self.what)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Only this child, by its pid; errors mean it is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Total CPU time (all threads) of `pid`, in clock ticks.
fn process_cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    measure::parse_proc_stat_cpu_ticks(&stat)
}

/// The benchmark's own `redis-server` on a free port.
#[derive(Debug)]
struct RedisServer {
    port: u16,
    _child: ChildGuard,
}

impl RedisServer {
    fn start(config: &Config) -> Result<RedisServer> {
        Self::start_node(config, false)
    }

    /// A single node, or (`cluster`) a `--cluster-enabled` node whose
    /// `nodes.conf` lives in the log directory.
    fn start_node(config: &Config, cluster: bool) -> Result<RedisServer> {
        let port = if cluster {
            free_cluster_port()?
        } else {
            free_port()?
        };
        let name = if cluster {
            format!("redis-cluster-{port}")
        } else {
            "redis-server".to_owned()
        };
        let log = config.log_dir.join(format!("{name}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", &config.redis_cpu, "redis-server"])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if cluster {
            let nodes_conf = config.log_dir.join(format!("{name}-nodes.conf"));
            // A stale file from an earlier run would name other nodes.
            let _ = std::fs::remove_file(&nodes_conf);
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(&nodes_conf);
        }
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("cloning the log handle")?)
            .stderr(log_file);
        let mut child = ChildGuard::spawn(command, "redis-server")?;
        child.wait_for_port(port, STARTUP_TIMEOUT)?;
        let server = RedisServer {
            port,
            _child: child,
        };
        let version = server
            .command("INFO server")?
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        eprintln!("bench-run: redis-server {version} on 127.0.0.1:{port}");
        Ok(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Removes every key (between the scale run's store sizes).
    fn flush(&self) -> Result<()> {
        let reply = self.simple_command("FLUSHALL")?;
        ensure!(reply == "OK", "FLUSHALL answered {reply:?}");
        Ok(())
    }

    /// Sends one inline command whose reply is a simple string (`+OK`).
    fn simple_command(&self, command: &str) -> Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).context("connecting to redis-server")?;
        // FLUSHALL of a million keys takes a moment.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line)
            .with_context(|| format!("reading the reply to {command}"))?;
        let line = line.trim_end();
        match line.strip_prefix('+') {
            Some(text) => Ok(text.to_owned()),
            None => bail!("{command} answered {line:?}"),
        }
    }

    fn info(&self) -> Result<RedisInfo> {
        RedisInfo::parse(&self.command("INFO cpu commandstats")?)
    }

    /// Runs `requests_fn` (which makes `requests` requests) while a `MONITOR`
    /// connection records every command Redis executes, then counts them.
    /// Nothing else uses this redis-server meanwhile.
    fn census(&self, requests: u64, requests_fn: impl FnOnce() -> Result<()>) -> Result<Census> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut monitor =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).context("connecting to redis-server")?;
        monitor.set_read_timeout(Some(IO_TIMEOUT))?;
        monitor.set_write_timeout(Some(IO_TIMEOUT))?;
        monitor.write_all(b"MONITOR\r\n")?;
        let mut reader = std::io::BufReader::new(monitor);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).context("reading MONITOR's +OK")?;
        ensure!(line.starts_with("+OK"), "MONITOR answered {line:?}");

        requests_fn()?;
        // A marker through another connection: once MONITOR shows it, every
        // command of the requests above has been shown too.
        let marker = format!("ECHO {CENSUS_END}");
        self.command(&marker)
            .context("sending the census end marker")?;

        let mut census = Census {
            requests,
            ..Census::default()
        };
        let deadline = Instant::now() + CENSUS_TIMEOUT;
        let mut bytes = 0usize;
        loop {
            ensure!(
                Instant::now() < deadline,
                "MONITOR did not show the end marker in time"
            );
            line.clear();
            let read = std::io::BufRead::read_line(&mut reader, &mut line)
                .context("reading MONITOR output")?;
            ensure!(read > 0, "redis-server closed the MONITOR connection");
            bytes += read;
            ensure!(bytes < 256 << 20, "MONITOR output larger than 256 MiB");
            if line.contains(CENSUS_END) {
                return Ok(census);
            }
            census.record_monitor_line(line.trim_end());
        }
    }

    /// Sends one inline command whose reply is a bulk string and returns it.
    fn command(&self, command: &str) -> Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).context("connecting to redis-server")?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        // A bulk reply: `$<len>\r\n<payload>\r\n`. Bounded by size and timeouts.
        loop {
            let read = stream
                .read(&mut chunk)
                .context("reading from redis-server")?;
            ensure!(read > 0, "redis-server closed the connection");
            buf.extend_from_slice(&chunk[..read]);
            ensure!(buf.len() < 16 << 20, "redis reply larger than 16 MiB");
            let Some(header_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                continue;
            };
            let header = std::str::from_utf8(&buf[..header_end]).context("redis reply header")?;
            let len: usize = header
                .strip_prefix('$')
                .with_context(|| format!("unexpected redis reply {header:?}"))?
                .parse()
                .with_context(|| format!("unexpected redis reply {header:?}"))?;
            let start = header_end + 2;
            if buf.len() >= start + len {
                return String::from_utf8(buf[start..start + len].to_vec())
                    .context("redis reply is not UTF-8");
            }
        }
    }
}

/// Three local masters joined into a Redis Cluster (no replicas), as the
/// tests' harness does it (`redis-cli --cluster create`).
#[derive(Debug)]
struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// How long the cluster may take to report `cluster_state:ok`.
    const FORM_TIMEOUT: Duration = Duration::from_secs(60);

    fn start(config: &Config) -> Result<RedisCluster> {
        let nodes = (0..3)
            .map(|_| RedisServer::start_node(config, true))
            .collect::<Result<Vec<_>>>()?;
        let mut command = Command::new("redis-cli");
        command
            .args(["-p", &nodes[0].port.to_string(), "--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null());
        let out = command
            .output()
            .context("running redis-cli --cluster create")?;
        ensure!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Self::FORM_TIMEOUT;
        loop {
            let mut ok = true;
            for node in &cluster.nodes {
                ok &= node.command("CLUSTER INFO")?.contains("cluster_state:ok");
            }
            if ok {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the Redis Cluster did not reach cluster_state:ok within {:?}",
                Self::FORM_TIMEOUT
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "bench-run: Redis Cluster of 3 masters on ports {}",
            cluster
                .nodes
                .iter()
                .map(|n| n.port.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(cluster)
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Every node's counters, summed.
    fn info(&self) -> Result<RedisInfo> {
        let mut total = RedisInfo::default();
        for node in &self.nodes {
            total.add(&node.info()?);
        }
        Ok(total)
    }

    fn flush(&self) -> Result<()> {
        self.nodes.iter().try_for_each(RedisServer::flush)
    }
}

/// One measured `wrk` run.
#[derive(Debug, Clone)]
struct Sample {
    round: usize,
    mode: Mode,
    route: Route,
    wrk: WrkResult,
    /// Server CPU time per request, µs.
    cpu_us_per_req: f64,
    /// Server CPU time / wall time, percent of one core.
    busy_percent: f64,
    /// User + system + steal time of the server's CPU not spent in the
    /// server (other processes, steal), percent; `None` unless `SERVER_CPU` is
    /// a single CPU.
    other_load_percent: Option<f64>,
    /// 0 for the first measurement, n for the n-th repeat after contention.
    attempt: u32,
    /// Redis calls during the run, per command.
    redis_calls: Option<BTreeMap<String, u64>>,
    /// redis-server CPU time per request, µs.
    redis_cpu_us_per_req: Option<f64>,
    /// PostgreSQL CPU time (postmaster and backends) per request, µs.
    postgres_cpu_us_per_req: Option<f64>,
    /// Statements clients sent to PostgreSQL per request.
    postgres_statements_per_req: Option<f64>,
}

/// `/counter` under contention: every connection on one session (`shared`),
/// or each request on one of `connections` sessions in turn (`spread`).
#[derive(Debug, Clone, Copy)]
struct Contention {
    mode: Mode,
    shared: WrkResult,
    /// Increments the store kept ÷ increments answered 2xx, shared session.
    shared_kept: f64,
    spread: WrkResult,
    spread_kept: f64,
}

/// What one server of one mode yields: a sample per route, the contention
/// runs, and in round 0 of a Redis mode a MONITOR census per route.
type ModeRuns = (Vec<Sample>, Vec<Contention>, Vec<(Route, Census)>);

struct Bench<'a> {
    config: &'a Config,
    script: &'a Path,
    clock_ticks: f64,
    redis: Option<&'a RedisServer>,
    cluster: Option<&'a RedisCluster>,
    postgres: Option<&'a PostgresServer>,
}

/// What one `wrk` run sends.
#[derive(Debug, Clone, Copy)]
struct Load<'a> {
    connections: u32,
    /// One `Cookie` header for every request ("" = none).
    cookie: &'a str,
    /// Several, `|`-separated, used in turn ("" = none).
    cookies: &'a str,
    /// A file of `Cookie` headers, one a line, picked at random per request.
    cookie_file: Option<&'a Path>,
}

impl Bench<'_> {
    /// Measures every route of `mode`; in round 0 of a Redis mode also takes
    /// a MONITOR census of each route.
    /// Starts `bench-server` for `mode` on a free port (log file
    /// `<mode>-<label>.log`), after it has preloaded `preload` sessions.
    fn start_server(&self, mode: Mode, label: &str, preload: u64) -> Result<(ChildGuard, u16)> {
        let config = self.config;
        let port = free_port()?;
        let log = config.log_dir.join(format!("{mode}-{label}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", &config.server_cpu])
            .arg(&config.server_bin)
            .args([mode.name(), &port.to_string()])
            .env("BENCH_PRELOAD", preload.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("cloning the log handle")?)
            .stderr(log_file);
        if mode.uses_redis() {
            let redis = self.redis.context("a Redis mode without redis-server")?;
            command.env("REDIS_URL", redis.url());
        }
        if mode.uses_redis_cluster() {
            let cluster = self
                .cluster
                .context("a Redis Cluster mode without a cluster")?;
            command.env("REDIS_CLUSTER_URLS", cluster.urls().join(","));
        }
        if mode.uses_postgres() {
            let postgres = self
                .postgres
                .context("a PostgreSQL mode without PostgreSQL")?;
            command.env("DATABASE_URL", postgres.url(POSTGRES_DATABASE));
        }
        let mut server = ChildGuard::spawn(command, format!("bench-server {mode}"))?;
        // Preloading a million sessions into Redis takes a while; into
        // PostgreSQL (a transaction each) longer.
        let per_session_ms = if mode.uses_postgres() { 2 } else { 5 };
        let timeout = STARTUP_TIMEOUT + Duration::from_millis(preload / per_session_ms);
        server
            .wait_for_port(port, timeout)
            .with_context(|| format!("server log: {}", log.display()))?;
        Ok((server, port))
    }

    fn run_mode(&self, mode: Mode, round: usize) -> Result<ModeRuns> {
        let config = self.config;
        let (mut server, port) = self.start_server(mode, &format!("round{}", round + 1), 0)?;
        let cookie = establish_session(port, mode)?;
        // /counter and /read: each request on one of a pool of sessions in
        // turn, four per connection, so that no two requests in flight
        // share a session (see the report's method line).
        let mut pool = Vec::new();
        if mode.has_session() {
            for _ in 0..4 * config.connections {
                pool.push(establish_session(port, mode)?);
            }
        }
        let pool = pool.join("|");

        let mut samples = Vec::new();
        for route in Route::ALL {
            let load = Load {
                connections: config.connections,
                cookie: "",
                cookies: if route.sends_cookie() { &pool } else { "" },
                cookie_file: None,
            };
            self.wrk_load(port, route, &load, config.warmup_secs)
                .with_context(|| format!("warm-up of {route}"))?;
            server.ensure_running()?;

            let sample = Sample {
                round,
                ..self.measure_best(&mut server, port, mode, route, &load)?
            };
            samples.push(sample);
        }
        let contention = if mode == Mode::Bare {
            Vec::new()
        } else {
            vec![self.contention(port, mode, &cookie)?]
        };
        let mut censuses = Vec::new();
        if round == 0 && mode.uses_redis() {
            let redis = self.redis.context("a Redis mode without redis-server")?;
            for route in Route::ALL {
                let cookie = if route.sends_cookie() {
                    cookie.as_str()
                } else {
                    ""
                };
                let requests = config.census_requests;
                let census = redis
                    .census(requests, || {
                        for _ in 0..requests {
                            let response = http_get(port, route.path(), cookie)?;
                            ensure!(
                                response.status == 200,
                                "{mode}: GET {route} answered {} during the census",
                                response.status
                            );
                        }
                        Ok(())
                    })
                    .with_context(|| format!("MONITOR census of {route}"))?;
                censuses.push((route, census));
            }
        }
        Ok((samples, contention, censuses))
    }

    /// [`Bench::measure_route`], repeated while other work kept the server's
    /// CPU busy (at most `RETRIES` times); the least contended attempt.
    fn measure_best(
        &self,
        server: &mut ChildGuard,
        port: u16,
        mode: Mode,
        route: Route,
        load: &Load<'_>,
    ) -> Result<Sample> {
        let config = self.config;
        let mut best: Option<Sample> = None;
        for attempt in 0..=config.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            let sample = Sample {
                attempt,
                ..self.measure_route(server, port, mode, route, load)?
            };
            let other = sample.other_load_percent.unwrap_or(0.0);
            let better = best
                .as_ref()
                .is_none_or(|b| other < b.other_load_percent.unwrap_or(0.0));
            if better {
                best = Some(sample);
            }
            if other <= config.max_other_load {
                break;
            }
            if attempt < config.retries {
                eprintln!(
                    "  {:<9} other load on the server's CPU was {other:.0} % (> {:.0} %): \
                     measuring again ({}/{})",
                    route.path(),
                    config.max_other_load,
                    attempt + 1,
                    config.retries,
                );
            }
        }
        best.context("no measurement was made")
    }

    /// `/counter` with every connection on one session, then spread over
    /// one session per connection; each time, how many of the answered
    /// increments the store kept (the `/read` value before and after).
    fn contention(&self, port: u16, mode: Mode, cookie: &str) -> Result<Contention> {
        let config = self.config;
        let visits = |cookie: &str| -> Result<u64> {
            let response = http_get(port, Route::Read.path(), cookie)?;
            response
                .body
                .trim()
                .parse()
                .with_context(|| format!("{mode}: /read answered {:?}", response.body))
        };
        let kept = |before: u64, after: u64, wrk: &WrkResult| {
            let answered = wrk.requests.saturating_sub(wrk.status_errors);
            if answered == 0 {
                0.0
            } else {
                after.saturating_sub(before) as f64 / answered as f64
            }
        };
        let before = visits(cookie)?;
        let shared = self.wrk_with(port, Route::Counter, cookie, "", config.duration_secs)?;
        let shared_kept = kept(before, visits(cookie)?, &shared);

        let mut cookies = Vec::new();
        for _ in 0..config.connections {
            cookies.push(establish_session(port, mode)?);
        }
        let mut before = 0;
        for c in &cookies {
            before += visits(c)?;
        }
        let spread = self.wrk_with(
            port,
            Route::Counter,
            "",
            &cookies.join("|"),
            config.duration_secs,
        )?;
        let mut after = 0;
        for c in &cookies {
            after += visits(c)?;
        }
        let spread_kept = kept(before, after, &spread);
        eprintln!(
            "  contention: one session {:>9.0} req/s, kept {:.1} %; a session per connection {:>9.0} req/s, kept {:.1} %",
            shared.requests_per_sec(),
            100.0 * shared_kept,
            spread.requests_per_sec(),
            100.0 * spread_kept,
        );
        Ok(Contention {
            mode,
            shared,
            shared_kept,
            spread,
            spread_kept,
        })
    }

    /// One measured `wrk` run of `route` with CPU and Redis samples around
    /// it (`round` and `attempt` are left 0 for the caller to fill in).
    fn measure_route(
        &self,
        server: &mut ChildGuard,
        port: u16,
        mode: Mode,
        route: Route,
        load: &Load<'_>,
    ) -> Result<Sample> {
        let config = self.config;
        let cpu_before = process_cpu_ticks(server.pid())?;
        let core_before = self.server_core_times()?;
        let redis_before = self.redis_info(mode)?;
        let postgres_before = self.postgres_counters(mode, true)?;
        let wrk = self
            .wrk_load(port, route, load, config.duration_secs)
            .with_context(|| format!("measuring {route}"))?;
        let cpu_after = process_cpu_ticks(server.pid())?;
        let core_after = self.server_core_times()?;
        let redis_after = self.redis_info(mode)?;
        let postgres_after = self.postgres_counters(mode, false)?;
        server.ensure_running()?;
        ensure!(wrk.requests > 0, "{route}: wrk completed no request");

        let cpu_us = (cpu_after.saturating_sub(cpu_before)) as f64 * 1e6 / self.clock_ticks;
        let requests = wrk.requests as f64;
        let (redis_calls, redis_cpu_us_per_req) = match (redis_before, redis_after) {
            (Some(before), Some(after)) => (
                Some(after.calls_since(&before)),
                Some((after.cpu_seconds - before.cpu_seconds).max(0.0) * 1e6 / requests),
            ),
            _ => (None, None),
        };
        let (postgres_cpu_us_per_req, postgres_statements_per_req) =
            match (postgres_before, postgres_after) {
                (Some((cpu_before, st_before)), Some((cpu_after, st_after))) => (
                    Some(
                        cpu_after.ticks_since(&cpu_before) as f64 * 1e6
                            / self.clock_ticks
                            / requests,
                    ),
                    Some(st_after.saturating_sub(st_before) as f64 / requests),
                ),
                _ => (None, None),
            };
        let other_load_percent = match (core_before, core_after) {
            (Some(before), Some(after)) if after.total > before.total => {
                let busy = after.busy.saturating_sub(before.busy);
                let server = cpu_after.saturating_sub(cpu_before);
                Some(
                    100.0 * busy.saturating_sub(server) as f64
                        / (after.total - before.total) as f64,
                )
            }
            _ => None,
        };
        let sample = Sample {
            other_load_percent,
            attempt: 0,
            round: 0,
            mode,
            route,
            wrk,
            cpu_us_per_req: cpu_us / requests,
            busy_percent: if wrk.duration_us == 0 {
                0.0
            } else {
                100.0 * cpu_us / wrk.duration_us as f64
            },
            redis_calls,
            redis_cpu_us_per_req,
            postgres_cpu_us_per_req,
            postgres_statements_per_req,
        };
        let postgres_note = match (postgres_cpu_us_per_req, postgres_statements_per_req) {
            (Some(cpu), Some(statements)) => {
                format!("  postgres {cpu:.1} µs/req, {statements:.2} statements/req")
            }
            _ => String::new(),
        };
        eprintln!(
            "  {:<9} {:>9.0} req/s  {:>6.2} µs/req  busy {:>3.0} %  other {}  p50 {} µs  p99 {} µs{}{}",
            route.path(),
            wrk.requests_per_sec(),
            sample.cpu_us_per_req,
            sample.busy_percent,
            fmt_percent(sample.other_load_percent),
            wrk.p50_us,
            wrk.p99_us,
            postgres_note,
            error_note(&wrk),
        );
        Ok(sample)
    }

    /// The `/proc/stat` counters of the server's CPU, when it is one CPU.
    fn server_core_times(&self) -> Result<Option<measure::CpuTimes>> {
        let Ok(cpu) = self.config.server_cpu.trim().parse::<u32>() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        measure::parse_proc_stat_cpu(&text, cpu).map(Some)
    }

    /// PostgreSQL's CPU sample and statements so far, for a PostgreSQL
    /// mode. The statistics query runs in a backend of its own, which must
    /// not count: before a run it comes first (that backend is gone by the
    /// next sample, so `CpuSample::ticks_since` leaves it out), after a run
    /// it comes last.
    fn postgres_counters(&self, mode: Mode, before: bool) -> Result<Option<(CpuSample, u64)>> {
        match self.postgres {
            Some(postgres) if mode.uses_postgres() => {
                if before {
                    let statements = postgres.statements()?;
                    Ok(Some((postgres.cpu_sample()?, statements)))
                } else {
                    let cpu = postgres.cpu_sample()?;
                    Ok(Some((cpu, postgres.statements()?)))
                }
            }
            _ => Ok(None),
        }
    }

    /// Redis' counters for a Redis mode (summed over the nodes of a
    /// cluster), `None` for the others.
    fn redis_info(&self, mode: Mode) -> Result<Option<RedisInfo>> {
        match (self.redis, self.cluster) {
            (Some(redis), _) if mode.uses_redis() => redis.info().map(Some),
            (_, Some(cluster)) if mode.uses_redis_cluster() => cluster.info().map(Some),
            _ => Ok(None),
        }
    }

    /// `wrk` with `config.connections` connections, one cookie or several
    /// used in turn.
    fn wrk_with(
        &self,
        port: u16,
        route: Route,
        cookie: &str,
        cookies: &str,
        secs: u64,
    ) -> Result<WrkResult> {
        let load = Load {
            connections: self.config.connections,
            cookie,
            cookies,
            cookie_file: None,
        };
        self.wrk_load(port, route, &load, secs)
    }

    /// Runs `wrk` for `secs` seconds against `route` with `load` (bounded:
    /// killed if it overruns by 30 s).
    fn wrk_load(&self, port: u16, route: Route, load: &Load<'_>, secs: u64) -> Result<WrkResult> {
        let config = self.config;
        let mut command = Command::new("taskset");
        command
            .args(["-c", &config.client_cpu, &config.wrk, "-t1"])
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{secs}s"))
            .args(["--timeout", "5s", "-s"])
            .arg(self.script)
            .arg(format!("http://127.0.0.1:{port}{}", route.path()))
            .env("BENCH_COOKIE", load.cookie)
            .env("BENCH_COOKIES", load.cookies)
            .env(
                "BENCH_COOKIE_FILE",
                load.cookie_file.map(Path::as_os_str).unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(command, "wrk")?;
        let deadline = Instant::now() + Duration::from_secs(secs + 30);
        let status = loop {
            if let Some(status) = child.child.try_wait().context("polling wrk")? {
                break status;
            }
            ensure!(Instant::now() < deadline, "wrk overran its time limit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.child.stdout.take() {
            out.read_to_string(&mut stdout)
                .context("reading wrk's output")?;
        }
        if let Some(mut err) = child.child.stderr.take() {
            err.read_to_string(&mut stderr)
                .context("reading wrk's errors")?;
        }
        ensure!(status.success(), "wrk failed ({status}): {stderr}{stdout}");
        measure::parse_wrk_output(&stdout).with_context(|| format!("wrk output: {stdout}{stderr}"))
    }
}

fn error_note(wrk: &WrkResult) -> String {
    if wrk.socket_errors + wrk.status_errors == 0 {
        String::new()
    } else {
        format!(
            "  ERRORS: {} socket, {} non-2xx",
            wrk.socket_errors, wrk.status_errors
        )
    }
}

/// A response from [`http_get`].
#[derive(Debug)]
struct Response {
    status: u16,
    /// `name=value` of every `Set-Cookie`.
    set_cookies: Vec<(String, String)>,
    body: String,
}

/// One HTTP/1.1 GET with `Connection: close`.
fn http_get(port: u16, path: &str, cookie: &str) -> Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        write!(request, "Cookie: {cookie}\r\n")?;
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response to GET {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed response to GET {path}: {text:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in response to GET {path}"))?;
    let set_cookies = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| {
            let pair = value.trim().split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    Ok(Response {
        status,
        set_cookies,
        body: body.to_owned(),
    })
}

/// Checks the session round trip and returns the `Cookie` header to send:
/// the first `/counter` sets the cookie and answers 1, the next one (with the
/// cookie) answers 2, `/read` answers 2, `/plain` answers 200.
fn establish_session(port: u16, mode: Mode) -> Result<String> {
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let header = |jar: &BTreeMap<String, String>| {
        jar.iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let expect = |path: &str, body: &str, jar: &mut BTreeMap<String, String>| -> Result<()> {
        let response = http_get(port, path, &header(jar))?;
        ensure!(
            response.status == 200,
            "{mode}: GET {path} answered {} {:?}",
            response.status,
            response.body
        );
        ensure!(
            response.body.trim() == body,
            "{mode}: GET {path} answered {:?}, expected {body:?}",
            response.body
        );
        jar.extend(response.set_cookies);
        Ok(())
    };
    expect("/counter", "1", &mut jar)?;
    ensure!(
        !mode.has_session() || !jar.is_empty(),
        "{mode}: the first /counter set no cookie"
    );
    expect("/counter", "2", &mut jar)?;
    expect("/read", "2", &mut jar)?;
    let plain = http_get(port, "/plain", "")?;
    ensure!(
        plain.status == 200,
        "{mode}: GET /plain answered {}",
        plain.status
    );
    Ok(header(&jar))
}

/// Facts about the machine and tools for the report header.
fn environment(config: &Config) -> Vec<(String, String)> {
    let run = |program: &str, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|out| {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text.lines().next().unwrap_or("").trim().to_owned()
            })
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        ("date".into(), run("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("commit".into(), git_commit()),
        (
            "load average before the run".into(),
            std::fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|_| "unknown".to_owned()),
        ),
        ("cpu".into(), format!("{cpu} ({} cores)", run("nproc", &[]))),
        ("kernel".into(), run("uname", &["-sr"])),
        ("rustc".into(), run("rustc", &["--version"])),
        ("wrk".into(), run(&config.wrk, &["--version"])),
        ("redis-server".into(), run("redis-server", &["--version"])),
    ]
}

/// `git rev-parse --short HEAD` (+ "-dirty" when session-bench has local
/// changes other than RESULTS.md), or "uncommitted".
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(MANIFEST_DIR)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty =
                git(&["status", "--porcelain", "--", "."]).is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "uncommitted".to_owned(),
    }
}

/// Medians of one (mode, route) over the rounds.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    rps: f64,
    cpu_us: f64,
    p50_us: f64,
    p99_us: f64,
    /// No run of this mode and route was uncontended: medians over all runs.
    contended: bool,
    rps_ratio: Option<f64>,
    cpu_ratio: Option<f64>,
    /// No round had both this run and bare's uncontended: the ratios are of
    /// medians (over uncontended runs where there are any), not per round.
    ratio_unpaired: bool,
}

/// Whether a run had at most `max_other` % other load on the server's CPU.
fn is_clean(sample: &Sample, max_other: f64) -> bool {
    sample
        .other_load_percent
        .is_none_or(|other| other <= max_other)
}

/// The runs of (mode, route), only the uncontended ones if there are any;
/// the flag says whether contended runs had to be used.
fn runs_of(samples: &[Sample], mode: Mode, route: Route, max_other: f64) -> (Vec<&Sample>, bool) {
    let all: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.mode == mode && s.route == route)
        .collect();
    let clean: Vec<&Sample> = all
        .iter()
        .copied()
        .filter(|s| is_clean(s, max_other))
        .collect();
    if clean.is_empty() {
        (all, true)
    } else {
        (clean, false)
    }
}

fn median_of(runs: &[&Sample], f: &dyn Fn(&Sample) -> f64) -> f64 {
    measure::median(&runs.iter().map(|s| f(s)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

fn summarize(samples: &[Sample], mode: Mode, route: Route, max_other: f64) -> Option<Summary> {
    let (runs, contended) = runs_of(samples, mode, route, max_other);
    if runs.is_empty() {
        return None;
    }
    let (bare_runs, _) = runs_of(samples, Mode::Bare, route, max_other);
    // Ratios are paired per round (bare of the same round), over rounds in
    // which both runs were uncontended; failing that, a ratio of medians.
    let pairs: Vec<(&Sample, &Sample)> = samples
        .iter()
        .filter(|s| s.mode == mode && s.route == route && is_clean(s, max_other))
        .filter_map(|s| {
            samples
                .iter()
                .find(|b| {
                    b.mode == Mode::Bare
                        && b.route == route
                        && b.round == s.round
                        && is_clean(b, max_other)
                })
                .map(|bare| (s, bare))
        })
        .collect();
    let ratio = |f: &dyn Fn(&Sample) -> f64| -> Option<f64> {
        if pairs.is_empty() {
            let bare = median_of(&bare_runs, f);
            (bare.is_finite() && bare > 0.0).then(|| median_of(&runs, f) / bare)
        } else {
            measure::median(
                &pairs
                    .iter()
                    .map(|(s, bare)| f(s) / f(bare))
                    .collect::<Vec<_>>(),
            )
        }
    };
    Some(Summary {
        rps: median_of(&runs, &|s| s.wrk.requests_per_sec()),
        cpu_us: median_of(&runs, &|s| s.cpu_us_per_req),
        p50_us: median_of(&runs, &|s| s.wrk.p50_us as f64),
        p99_us: median_of(&runs, &|s| s.wrk.p99_us as f64),
        contended,
        rps_ratio: ratio(&|s| s.wrk.requests_per_sec()),
        cpu_ratio: ratio(&|s| s.cpu_us_per_req),
        ratio_unpaired: pairs.is_empty(),
    })
}

/// Redis calls per request of one (mode, route), summed over the rounds.
fn redis_calls_per_request(
    samples: &[Sample],
    mode: Mode,
    route: Route,
) -> Option<(f64, String, f64)> {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.mode == mode && s.route == route && s.redis_calls.is_some())
        .collect();
    if mine.is_empty() {
        return None;
    }
    let requests: u64 = mine.iter().map(|s| s.wrk.requests).sum();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for sample in &mine {
        for (name, calls) in sample.redis_calls.iter().flatten() {
            *totals.entry(name.clone()).or_default() += calls;
        }
    }
    let (total, breakdown) = per_request(&totals, requests);
    let redis_cpu = measure::median(
        &mine
            .iter()
            .filter_map(|s| s.redis_cpu_us_per_req)
            .collect::<Vec<_>>(),
    )
    .unwrap_or(f64::NAN);
    Some((total, breakdown, redis_cpu))
}

/// Total calls per request and a "NAME n, NAME n" breakdown, most first.
fn per_request(calls: &BTreeMap<String, u64>, requests: u64) -> (f64, String) {
    let per_req = |count: u64| count as f64 / requests.max(1) as f64;
    let mut by_count: Vec<(&String, &u64)> = calls.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let breakdown = by_count
        .iter()
        .map(|(name, count)| format!("{} {}", name.to_uppercase(), fmt_calls(per_req(**count))))
        .collect::<Vec<_>>()
        .join(", ");
    (per_req(calls.values().sum()), breakdown)
}

fn dash_if_empty(text: &str) -> &str {
    if text.is_empty() {
        "–"
    } else {
        text
    }
}

fn fmt_calls(per_req: f64) -> String {
    if (per_req - per_req.round()).abs() < 0.005 {
        format!("{:.0}", per_req.round())
    } else {
        format!("{per_req:.2}")
    }
}

fn fmt_rps(rps: f64) -> String {
    let whole = rps.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn fmt_percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} %"))
}

fn fmt_ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn render_report(
    config: &Config,
    samples: &[Sample],
    contention: &[Contention],
    censuses: &BTreeMap<(usize, usize), Census>,
    failures: &[String],
    environment: &[(String, String)],
) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; `let _ =` keeps the code free of unwrap.
    let _ = writeln!(md, "# session-bench results\n");
    let _ = writeln!(
        md,
        "Generated by `scripts/bench.sh`{} (`session-bench/src/bin/bench-run.rs`). \
         Do not edit by hand.\n",
        if config.quick { " in QUICK mode" } else { "" }
    );
    for (name, value) in environment {
        let _ = writeln!(md, "- {name}: {value}");
    }
    let _ = writeln!(
        md,
        "- method: {} round(s), modes interleaved (start rotates each round); per mode and \
         route one {} s warm-up then one {} s `wrk -t1 -c{}` run; server pinned to CPU {} \
         (one worker thread), wrk to CPU {}, the bench's own redis-server to CPU {}; a run \
         during which other work kept the server's CPU more than {:.0} % busy is measured \
         again (at most {} times) and the least contended attempt kept",
        config.rounds,
        config.warmup_secs,
        config.duration_secs,
        config.connections,
        config.server_cpu,
        config.client_cpu,
        config.redis_cpu,
        config.max_other_load,
        config.retries,
    );
    let other: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.other_load_percent)
        .collect();
    if let Some(median_other) = measure::median(&other) {
        let max_other = other.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "- other load on the server's CPU during the measured runs (other processes, \
             steal): median {median_other:.0} %, max {max_other:.0} % — req/s \
             is only comparable between runs with little of it; µs/req much less affected"
        );
    }
    let _ = writeln!(
        md,
        "- sessions: `/counter` and `/read` requests take their cookie in turn from {} \
         sessions made before the runs (four per connection), so no two requests in flight \
         share a session and no write waits for or conflicts with another (uncontended); \
         `/plain` is sent without cookie. One session shared by every connection is the \
         next table's\n",
        4 * config.connections
    );

    let _ = writeln!(
        md,
        "Cells: requests/s · server CPU µs per request · p50/p99 latency in ms (medians over \
         rounds). Ratio to bare: median over rounds of (mode ÷ bare actix-web of the same \
         round), for /counter, /read, /plain. Redis cmds/req: commands the server sent to Redis \
         per request (MONITOR census, see below), for /counter, /read, /plain. Medians use only the runs with at \
         most {max_other:.0} % other load on the server's CPU; † = every run of that cell was \
         contended, median of all. ‡ = no round had this run and bare's both uncontended: \
         ratio of the medians instead of per-round pairs.\n",
        max_other = config.max_other_load,
    );
    let _ = writeln!(
        md,
        "| mode | /counter | /read | /plain | ratio to bare | Redis cmds/req |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for &mode in &config.modes {
        let mut row = format!("| {mode} |");
        let summaries: Vec<Option<Summary>> = Route::ALL
            .iter()
            .map(|&route| summarize(samples, mode, route, config.max_other_load))
            .collect();
        for summary in &summaries {
            match summary {
                Some(s) => {
                    let _ = write!(
                        row,
                        " {} · {:.1} µs · {}/{}{} |",
                        fmt_rps(s.rps),
                        s.cpu_us,
                        fmt_ms(s.p50_us),
                        fmt_ms(s.p99_us),
                        if s.contended { " †" } else { "" }
                    );
                }
                None => row.push_str(" n/a |"),
            }
        }
        let ratio = |f: fn(&Summary) -> Option<f64>| -> String {
            summaries
                .iter()
                .map(|s| match s {
                    Some(summary) => match f(summary) {
                        Some(r) if summary.ratio_unpaired && mode != Mode::Bare => {
                            format!("{r:.2}‡")
                        }
                        Some(r) => format!("{r:.2}"),
                        None => "n/a".to_owned(),
                    },
                    None => "n/a".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = write!(
            row,
            " req/s {}<br>CPU {} |",
            ratio(|s| s.rps_ratio),
            ratio(|s| s.cpu_ratio)
        );
        if mode.uses_redis() {
            let calls: Vec<String> = Route::ALL
                .iter()
                .map(
                    |&route| match censuses.get(&(mode_index(mode), route_index(route))) {
                        Some(census) => fmt_calls(per_request(&census.client, census.requests).0),
                        None => "n/a".to_owned(),
                    },
                )
                .collect();
            let _ = write!(row, " {} |", calls.join(" / "));
        } else {
            row.push_str(" – |");
        }
        let _ = writeln!(md, "{row}");
    }

    if !contention.is_empty() {
        let _ = writeln!(md, "\n## Concurrent increments of one session\n");
        let _ = writeln!(
            md,
            "`/counter` for {} s with {} connections: all on one session (every request \
             races the others on the same field), then each request on one of {} sessions in \
             turn. Kept = increments the store holds afterwards (`/read` before and after) ÷ \
             increments answered 2xx; 409 answers (sessionkit's conflict after 32 retries) are \
             not counted as answered. Medians over rounds.\n",
            config.duration_secs, config.connections, config.connections
        );
        let _ = writeln!(
            md,
            "| mode | one session: req/s | kept | non-2xx | a session per connection: req/s | kept |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for &mode in &config.modes {
            let runs: Vec<&Contention> = contention.iter().filter(|c| c.mode == mode).collect();
            if runs.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Contention) -> f64| {
                measure::median(&runs.iter().map(|c| f(c)).collect::<Vec<_>>()).unwrap_or(0.0)
            };
            let _ = writeln!(
                md,
                "| {mode} | {} | {:.1} % | {:.0} | {} | {:.1} % |",
                fmt_rps(med(&|c| c.shared.requests_per_sec())),
                100.0 * med(&|c| c.shared_kept),
                med(&|c| c.shared.status_errors as f64),
                fmt_rps(med(&|c| c.spread.requests_per_sec())),
                100.0 * med(&|c| c.spread_kept),
            );
        }
    }

    let redis_modes: Vec<Mode> = config
        .modes
        .iter()
        .copied()
        .filter(|m| m.uses_redis())
        .collect();
    if !redis_modes.is_empty() {
        let _ = writeln!(md, "\n## Redis commands per request\n");
        let _ = writeln!(
            md,
            "sent = commands the server sent to Redis, per request, counted with `MONITOR` over \
             {} sequential requests per route (once per mode, outside the measured runs); in \
             scripts = commands run inside Lua scripts (EVAL/EVALSHA) for those requests. \
             executed = every command Redis executed during the measured runs (`INFO \
             commandstats`, script internals included, the bench's own INFO excluded) ÷ \
             requests. redis CPU = redis-server user+sys time (`INFO cpu`) per request during \
             the measured runs (median).\n",
            config.census_requests
        );
        let _ = writeln!(
            md,
            "| mode | route | sent/req | sent | in scripts/req | in scripts | executed/req | redis CPU µs/req |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for &mode in &redis_modes {
            for route in Route::ALL {
                let census = censuses.get(&(mode_index(mode), route_index(route)));
                let (sent, sent_breakdown) = census
                    .map(|c| per_request(&c.client, c.requests))
                    .map_or(("n/a".to_owned(), "n/a".to_owned()), |(t, b)| {
                        (fmt_calls(t), b)
                    });
                let (scripted, scripted_breakdown) = census
                    .map(|c| per_request(&c.script, c.requests))
                    .map_or(("n/a".to_owned(), "n/a".to_owned()), |(t, b)| {
                        (fmt_calls(t), b)
                    });
                let (executed, cpu) = redis_calls_per_request(samples, mode, route)
                    .map_or(("n/a".to_owned(), "n/a".to_owned()), |(total, _, cpu)| {
                        (fmt_calls(total), format!("{cpu:.1}"))
                    });
                let _ = writeln!(
                    md,
                    "| {mode} | {route} | {sent} | {} | {scripted} | {} | {executed} | {cpu} |",
                    dash_if_empty(&sent_breakdown),
                    dash_if_empty(&scripted_breakdown),
                );
            }
        }
        let _ = writeln!(md, "\nexecuted during the measured runs, per command:\n");
        let _ = writeln!(md, "| mode | route | executed/req | breakdown |");
        let _ = writeln!(md, "|---|---|---|---|");
        for &mode in &redis_modes {
            for route in Route::ALL {
                if let Some((total, breakdown, _)) = redis_calls_per_request(samples, mode, route) {
                    let _ = writeln!(
                        md,
                        "| {mode} | {route} | {} | {} |",
                        fmt_calls(total),
                        dash_if_empty(&breakdown)
                    );
                }
            }
        }
    }

    render_postgres(&mut md, config, samples);

    let _ = writeln!(md, "\n## Every run\n");
    let _ = writeln!(
        md,
        "busy = server CPU time ÷ wall time (100 % = the server had its core to itself and \
         was saturated). other = user, system and steal time of the server's core not spent \
         by the server (other processes on this shared machine, hypervisor steal) ÷ wall \
         time: where it \
         is high, req/s of that run is depressed while µs/req stays usable. attempt kept: 0 \
         = the first measurement, n = the n-th repeat.\n"
    );
    let _ = writeln!(
        md,
        "| round | mode | route | req/s | µs/req | busy | other | p50 ms | p99 ms | requests | errors | attempt kept |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for sample in samples {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.0} % | {} | {} | {} | {} | {} | {} |",
            sample.round + 1,
            sample.mode,
            sample.route,
            fmt_rps(sample.wrk.requests_per_sec()),
            sample.cpu_us_per_req,
            sample.busy_percent,
            fmt_percent(sample.other_load_percent),
            fmt_ms(sample.wrk.p50_us as f64),
            fmt_ms(sample.wrk.p99_us as f64),
            sample.wrk.requests,
            sample.wrk.socket_errors + sample.wrk.status_errors,
            sample.attempt,
        );
    }

    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failures\n");
        for failure in failures {
            let _ = writeln!(md, "- {failure}");
        }
    }
    md
}

/// The PostgreSQL modes' section: statements and PostgreSQL CPU per
/// request, then sessionkit against the best peer of the same run.
fn render_postgres(md: &mut String, config: &Config, samples: &[Sample]) {
    let modes: Vec<Mode> = config
        .modes
        .iter()
        .copied()
        .filter(|m| m.uses_postgres())
        .collect();
    if modes.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## PostgreSQL per request\n");
    let _ = writeln!(
        md,
        "statements/req = top-level statements clients sent (`pg_stat_statements` calls, \
         the benchmark's own queries of the statistics excluded) during the measured runs ÷ \
         requests; postgres CPU = utime+stime of the postmaster and its backends (`/proc`) \
         during the measured runs ÷ requests; total = app + postgres CPU µs/req. Medians \
         over the rounds' uncontended runs, as above.\n"
    );
    let _ = writeln!(
        md,
        "| mode | route | req/s | statements/req | app CPU µs/req | postgres CPU µs/req | total CPU µs/req |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for &mode in &modes {
        for route in Route::ALL {
            let (runs, _) = runs_of(samples, mode, route, config.max_other_load);
            if runs.is_empty() {
                continue;
            }
            let app = median_of(&runs, &|s| s.cpu_us_per_req);
            let pg = median_of(&runs, &|s| s.postgres_cpu_us_per_req.unwrap_or(f64::NAN));
            let statements = median_of(&runs, &|s| {
                s.postgres_statements_per_req.unwrap_or(f64::NAN)
            });
            let _ = writeln!(
                md,
                "| {mode} | {route} | {} | {} | {app:.1} | {pg:.1} | {:.1} |",
                fmt_rps(median_of(&runs, &|s| s.wrk.requests_per_sec())),
                fmt_calls(statements),
                app + pg,
            );
        }
    }

    let peers: Vec<Mode> = modes
        .iter()
        .copied()
        .filter(|m| matches!(m, Mode::TowerPostgres | Mode::AxumSessionPostgres))
        .collect();
    let ours: Vec<Mode> = modes
        .iter()
        .copied()
        .filter(|m| matches!(m, Mode::SessionkitPostgres | Mode::SessionkitAxumPostgres))
        .collect();
    if peers.is_empty() || ours.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n### sessionkit ÷ the best peer, PostgreSQL\n");
    let _ = writeln!(
        md,
        "req/s ÷ the highest peer req/s of this run; CPU ÷ the lowest peer app CPU µs/req; \
         total CPU ÷ the lowest peer app + postgres CPU µs/req (medians as above; peers: {}).\n",
        peers
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "| mode | route | req/s ratio (best peer) | app CPU ratio | total CPU ratio |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    let medians = |mode: Mode, route: Route| -> Option<(f64, f64, f64)> {
        let (runs, _) = runs_of(samples, mode, route, config.max_other_load);
        if runs.is_empty() {
            return None;
        }
        let app = median_of(&runs, &|s| s.cpu_us_per_req);
        let pg = median_of(&runs, &|s| s.postgres_cpu_us_per_req.unwrap_or(f64::NAN));
        Some((
            median_of(&runs, &|s| s.wrk.requests_per_sec()),
            app,
            app + pg,
        ))
    };
    for &mode in &ours {
        for route in [Route::Counter, Route::Read] {
            let Some((rps, app, total)) = medians(mode, route) else {
                continue;
            };
            let peer_figures: Vec<(Mode, (f64, f64, f64))> = peers
                .iter()
                .filter_map(|&peer| medians(peer, route).map(|m| (peer, m)))
                .collect();
            let Some((best, (best_rps, _, _))) = peer_figures
                .iter()
                .copied()
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            else {
                continue;
            };
            let min_app = peer_figures
                .iter()
                .map(|(_, m)| m.1)
                .fold(f64::INFINITY, f64::min);
            let min_total = peer_figures
                .iter()
                .map(|(_, m)| m.2)
                .fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                md,
                "| {mode} | {route} | {:.2} ({best}) | {:.2} | {:.2} |",
                rps / best_rps,
                app / min_app,
                total / min_total,
            );
        }
    }
}

/// The scale run (`SCALE=1`): for every mode and number of live sessions, a
/// server preloaded with that many sessions, then `/counter` and `/read` at
/// each number of connections, every request on a session picked at random
/// among them.
mod scale_run {
    use std::fmt::Write as _;
    use std::io::Write as _;
    use std::path::PathBuf;

    use anyhow::{ensure, Context, Result};
    use session_bench::scale::{self, parse_list, size_label};
    use session_bench::{measure, Mode, Route};

    use super::{
        env_or, environment, establish_session, fmt_ms, fmt_percent, fmt_rps, http_get, Bench,
        Load, Sample,
    };

    /// The routes measured at every point.
    const ROUTES: [Route; 2] = [Route::Counter, Route::Read];

    /// What a scale run covers.
    #[derive(Debug, Clone)]
    pub struct Settings {
        /// Live sessions (`SCALE_SIZES`, default 1k, 100k, 1M).
        pub sizes: Vec<u64>,
        /// `wrk` connections (`SCALE_CONNECTIONS`, default 1, 32, 256).
        pub connections: Vec<u32>,
    }

    impl Settings {
        /// `SCALE_SIZES` and `SCALE_CONNECTIONS`, comma-separated.
        pub fn from_env() -> Result<Settings> {
            let sizes = match env_or("SCALE_SIZES", "")? {
                text if text.trim().is_empty() => scale::DEFAULT_SIZES.to_vec(),
                text => parse_list("SCALE_SIZES", &text, 1..=scale::MAX_SIZE)?,
            };
            let connections = match env_or("SCALE_CONNECTIONS", "")? {
                text if text.trim().is_empty() => scale::DEFAULT_CONNECTIONS.to_vec(),
                text => parse_list("SCALE_CONNECTIONS", &text, 1..=1024)?,
            };
            Ok(Settings { sizes, connections })
        }
    }

    /// One measured run of the scale matrix.
    #[derive(Debug, Clone)]
    struct Point {
        size: u64,
        connections: u32,
        sample: Sample,
        /// PostgreSQL modes: bytes on disk of the mode's tables with their
        /// indexes and TOAST, right after the preload.
        disk: Option<u64>,
    }

    /// `pg_total_relation_size` summed over every table of the benchmark's
    /// database (it was recreated for this mode and size, so they are this
    /// mode's), after a `VACUUM` so the visibility map and free space map
    /// are counted as a running server has them.
    fn disk_bytes(bench: &Bench<'_>) -> Result<u64> {
        let postgres = bench.postgres.context("no PostgreSQL")?;
        postgres.psql_in(super::POSTGRES_DATABASE, "VACUUM")?;
        let text = postgres.psql_in(
            super::POSTGRES_DATABASE,
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        )?;
        text.trim()
            .parse()
            .with_context(|| format!("pg_total_relation_size answered {text:?}"))
    }

    pub fn run(bench: &Bench<'_>, settings: &Settings) -> Result<()> {
        let config = bench.config;
        eprintln!(
            "bench-run: scale run: {} sessions, {} connections",
            settings
                .sizes
                .iter()
                .map(|s| size_label(*s))
                .collect::<Vec<_>>()
                .join(", "),
            settings
                .connections
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut points = Vec::new();
        let mut failures = Vec::new();
        for &size in &settings.sizes {
            for &mode in &config.modes {
                eprintln!("scale: {mode}, {} live sessions", size_label(size));
                match measure_size(bench, settings, mode, size) {
                    Ok(mut more) => points.append(&mut more),
                    Err(err) => {
                        eprintln!("  FAILED: {err:#}");
                        failures.push(format!("{mode}, {} sessions: {err:#}", size_label(size)));
                    }
                }
            }
        }
        let report = render(bench, settings, &points, &failures);
        if let Some(parent) = config.out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&config.out, &report)
            .with_context(|| format!("writing {}", config.out.display()))?;
        println!("{report}");
        eprintln!(
            "bench-run: scale report written to {}",
            config.out.display()
        );
        ensure!(
            failures.is_empty(),
            "{} scale point(s) failed; see the report",
            failures.len()
        );
        Ok(())
    }

    /// One server of `mode` preloaded with `size` sessions, measured at
    /// every number of connections.
    fn measure_size(
        bench: &Bench<'_>,
        settings: &Settings,
        mode: Mode,
        size: u64,
    ) -> Result<Vec<Point>> {
        let config = bench.config;
        // Each size starts from an empty Redis: no session of another mode or
        // size stays behind to make the keyspace larger than measured.
        if mode.uses_redis() {
            bench.redis.context("no redis-server")?.flush()?;
        }
        if mode.uses_redis_cluster() {
            bench.cluster.context("no Redis Cluster")?.flush()?;
        }
        if mode.uses_postgres() {
            bench
                .postgres
                .context("no PostgreSQL")?
                .recreate_database(super::POSTGRES_DATABASE)?;
        }
        let label = format!("scale-{}", size_label(size));
        let (mut server, port) = bench.start_server(mode, &label, size)?;
        let disk = if mode.uses_postgres() {
            Some(disk_bytes(bench)?)
        } else {
            None
        };
        // The cookie name, from a session the server makes itself.
        let fresh = establish_session(port, mode)?;
        let cookie_name = fresh
            .split_once('=')
            .map(|(name, _)| name.to_owned())
            .context("the first /counter set no cookie")?;
        let tower = matches!(
            mode,
            Mode::TowerMemory | Mode::TowerRedis | Mode::TowerPostgres
        );
        // The preloaded sessions are live: the first and the last answer 0.
        for index in [0, size - 1] {
            let cookie = scale::cookie(tower, &cookie_name, index);
            let response = http_get(port, Route::Read.path(), &cookie)?;
            ensure!(
                response.status == 200 && response.body.trim() == "0",
                "{mode}: preloaded session {index} answered {} {:?}",
                response.status,
                response.body
            );
        }
        let file = write_cookies(bench, mode, size, tower, &cookie_name)?;

        let mut points = Vec::new();
        let result = (|| -> Result<()> {
            for &connections in &settings.connections {
                for route in ROUTES {
                    let load = Load {
                        connections,
                        cookie: "",
                        cookies: "",
                        cookie_file: Some(&file),
                    };
                    bench
                        .wrk_load(port, route, &load, config.warmup_secs)
                        .with_context(|| format!("warm-up of {route}"))?;
                    server.ensure_running()?;
                    eprint!("  c={connections:<4}");
                    let sample = bench.measure_best(&mut server, port, mode, route, &load)?;
                    points.push(Point {
                        size,
                        connections,
                        sample,
                        disk,
                    });
                }
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&file);
        result?;
        Ok(points)
    }

    /// The `Cookie` header of every preloaded session, one a line.
    fn write_cookies(
        bench: &Bench<'_>,
        mode: Mode,
        size: u64,
        tower: bool,
        cookie_name: &str,
    ) -> Result<PathBuf> {
        let path = bench
            .config
            .log_dir
            .join(format!("scale-cookies-{mode}-{size}.txt"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for index in 0..size {
            writeln!(out, "{}", scale::cookie(tower, cookie_name, index))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// `req/s · CPU µs · p99 ms` (and redis-server CPU µs for Redis modes).
    fn cell(sample: &Sample) -> String {
        let mut cell = format!(
            "{} · {:.1} µs · {}",
            fmt_rps(sample.wrk.requests_per_sec()),
            sample.cpu_us_per_req,
            fmt_ms(sample.wrk.p99_us as f64)
        );
        if let Some(redis) = sample.redis_cpu_us_per_req {
            let _ = write!(cell, " · R {redis:.1} µs");
        }
        if let Some(postgres) = sample.postgres_cpu_us_per_req {
            let _ = write!(cell, " · P {postgres:.1} µs");
        }
        if sample.wrk.socket_errors + sample.wrk.status_errors > 0 {
            cell.push_str(" ⚠");
        }
        cell
    }

    fn render(
        bench: &Bench<'_>,
        settings: &Settings,
        points: &[Point],
        failures: &[String],
    ) -> String {
        let config = bench.config;
        let mut md = String::new();
        let _ = writeln!(md, "# session-bench scale results\n");
        let _ = writeln!(
            md,
            "Generated by `SCALE=1 scripts/bench.sh`{} (`session-bench/src/bin/bench-run.rs`). \
             Do not edit by hand.\n",
            if config.quick { " in QUICK mode" } else { "" }
        );
        for (name, value) in environment(config) {
            let _ = writeln!(md, "- {name}: {value}");
        }
        let _ = writeln!(
            md,
            "- method: per mode and number of live sessions, one server (one worker thread, \
             pinned to CPU {}) whose store was filled with that many sessions before it \
             listened (`BENCH_PRELOAD`; Redis flushed first); then for each number of \
             connections and route one {} s warm-up and one {} s `wrk -t1` run (pinned to CPU \
             {}), every request carrying the cookie of a preloaded session picked uniformly \
             at random. Redis (single node, and the three Cluster masters) pinned to CPU {}. A \
             run with more than {:.0} % other load on the server's CPU is measured again (at \
             most {} times), the least contended attempt kept; one round",
            config.server_cpu,
            config.warmup_secs,
            config.duration_secs,
            config.client_cpu,
            config.redis_cpu,
            config.max_other_load,
            config.retries,
        );
        let other: Vec<f64> = points
            .iter()
            .filter_map(|p| p.sample.other_load_percent)
            .collect();
        if let Some(median_other) = measure::median(&other) {
            let max_other = other.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                md,
                "- other load on the server's CPU during the measured runs: median \
                 {median_other:.0} %, max {max_other:.0} % (req/s is depressed where it is \
                 high; CPU µs/req much less)"
            );
        }
        let _ = writeln!(
            md,
            "\nCells: requests/s · server (app) CPU µs per request · p99 latency in ms; for the \
             Redis modes also R = redis-server CPU µs per request (user+sys, `INFO cpu`, summed \
             over the Cluster's nodes), for the PostgreSQL modes P = PostgreSQL CPU µs per \
             request (postmaster and backends, `/proc`). ⚠ = the run had socket errors or non-2xx answers (see \
             the last table). sessionkit-axum-* and tower-* run on the same framework (axum \
             0.8) and runtime (one current-thread tokio runtime).\n"
        );
        for route in ROUTES {
            let _ = writeln!(md, "## {route}\n");
            let mut header = "| mode | live sessions |".to_owned();
            let mut rule = "|---|---|".to_owned();
            for c in &settings.connections {
                let _ = write!(header, " {c} conn. |");
                rule.push_str("---|");
            }
            let _ = writeln!(md, "{header}\n{rule}");
            for &mode in &config.modes {
                for &size in &settings.sizes {
                    let mut row = format!("| {mode} | {} |", size_label(size));
                    let mut any = false;
                    for &c in &settings.connections {
                        match points.iter().find(|p| {
                            p.sample.mode == mode
                                && p.size == size
                                && p.connections == c
                                && p.sample.route == route
                        }) {
                            Some(point) => {
                                any = true;
                                let _ = write!(row, " {} |", cell(&point.sample));
                            }
                            None => row.push_str(" n/a |"),
                        }
                    }
                    if any {
                        let _ = writeln!(md, "{row}");
                    }
                }
            }
            md.push('\n');
        }

        let disks: Vec<(Mode, u64, u64)> = {
            let mut seen = Vec::new();
            for point in points {
                if let Some(bytes) = point.disk {
                    if !seen
                        .iter()
                        .any(|(m, s, _)| *m == point.sample.mode && *s == point.size)
                    {
                        seen.push((point.sample.mode, point.size, bytes));
                    }
                }
            }
            seen
        };
        if !disks.is_empty() {
            let _ = writeln!(md, "## PostgreSQL on disk\n");
            let _ = writeln!(
                md,
                "`pg_total_relation_size` (heap, indexes, TOAST, free space and visibility \
                 maps) of the mode's tables right after the preload and a `VACUUM`, ÷ the \
                 preloaded sessions (one field, `visits`, each).\n"
            );
            let _ = writeln!(
                md,
                "| mode | live sessions | bytes on disk | bytes per session |"
            );
            let _ = writeln!(md, "|---|---|---|---|");
            for (mode, size, bytes) in disks {
                let _ = writeln!(
                    md,
                    "| {mode} | {} | {bytes} | {:.0} |",
                    size_label(size),
                    bytes as f64 / size as f64
                );
            }
            md.push('\n');
        }

        let _ = writeln!(md, "## Every run\n");
        let _ = writeln!(
            md,
            "| mode | sessions | conn. | route | req/s | µs/req | busy | other | p50 ms | p99 ms | redis µs/req | requests | errors | attempt kept |"
        );
        let _ = writeln!(
            md,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for point in points {
            let s = &point.sample;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2} | {:.0} % | {} | {} | {} | {} | {} | {} | {} |",
                s.mode,
                size_label(point.size),
                point.connections,
                s.route,
                fmt_rps(s.wrk.requests_per_sec()),
                s.cpu_us_per_req,
                s.busy_percent,
                fmt_percent(s.other_load_percent),
                fmt_ms(s.wrk.p50_us as f64),
                fmt_ms(s.wrk.p99_us as f64),
                s.redis_cpu_us_per_req
                    .map_or_else(|| "–".to_owned(), |r| format!("{r:.1}")),
                s.wrk.requests,
                s.wrk.socket_errors + s.wrk.status_errors,
                s.attempt,
            );
        }
        if !failures.is_empty() {
            let _ = writeln!(md, "\n## Failures\n");
            for failure in failures {
                let _ = writeln!(md, "- {failure}");
            }
        }
        md
    }
}

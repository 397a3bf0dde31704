//! Throwaway Redis servers for tests: `redis-server` on a free loopback port
//! with no persistence and a temporary directory, and a three-master Redis
//! Cluster joined with `redis-cli --cluster create`.
//!
//! Tests never use a server someone else started (not the shared one on
//! 6379) and never skip: without `redis-server` on `PATH` they fail with the
//! command that installs it. Every wait is bounded. A server is killed when
//! its handle is dropped, and a small watchdog kills it when the test process
//! exits, so servers shared through a `static` do not outlive the tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "the Redis tests start their own redis-server, but `redis-server` \
    was not found on PATH: install it with `apt-get install redis-server` (Debian/Ubuntu) \
    or `brew install redis` (macOS)";

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster may take to report `cluster_state:ok` everywhere.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A `redis-server` child process on `127.0.0.1:port`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    cluster: bool,
    /// Serves TLS only (on `port`), with a certificate from its own CA.
    tls: bool,
    /// What else the server is: a replica, or a sentinel.
    role: Role,
    child: Option<Child>,
}

/// A server's part in a Sentinel set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// A plain server (a primary, or a cluster node).
    Plain,
    /// A replica of the server on this port.
    ReplicaOf(u16),
    /// A sentinel watching the primary on this port as this service.
    Sentinel(u16, String),
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is missing (saying how to install it) or does not
    /// come up in time.
    #[must_use]
    pub fn start() -> Self {
        Self::start_kind(false, false)
    }

    /// Starts a server that speaks only TLS, with a certificate for
    /// `127.0.0.1` signed by a throwaway CA (made with `openssl`); see
    /// [`RedisServer::tls_url`] and [`RedisServer::ca_pem`].
    ///
    /// # Panics
    /// When `redis-server` or `openssl` is missing or the server does not come up.
    #[must_use]
    pub fn start_tls() -> Self {
        Self::start_kind(false, true)
    }

    /// `rediss://127.0.0.1:port` for a [`RedisServer::start_tls`] server.
    #[must_use]
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    ///
    /// # Panics
    /// When the server was not started with TLS.
    #[must_use]
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("a TLS server has a CA certificate")
    }

    /// One server per test process, started on first use. Give each test
    /// its own key prefix.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    fn start_kind(cluster: bool, tls: bool) -> Self {
        Self::start_role(cluster, tls, Role::Plain)
    }

    fn start_role(cluster: bool, tls: bool, role: Role) -> Self {
        check_installed();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port(cluster);
            let mut server = Self {
                port,
                dir: temp_dir(port),
                cluster,
                tls,
                role: role.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                // Another process may have taken the port between our probe
                // and the server's bind: try another.
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new("redis-server");
        if let Role::Sentinel(primary, service) = &self.role {
            // A sentinel rewrites its config file: one of its own.
            let conf = self.dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {service} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 10000\n\
                 sentinel parallel-syncs {service} 1\n"
            );
            std::fs::write(&conf, text)
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            cmd.arg(&conf).arg("--sentinel");
        }
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &dir, "--daemonize", "no"])
        .arg("--logfile")
        .arg(&log);
        if self.tls {
            make_certificates(&self.dir)?;
            let file = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-auth-clients",
                "no",
            ])
            .args(["--tls-cert-file", &file("server.crt")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.crt")]);
        }
        if let Role::ReplicaOf(primary) = self.role {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!("{INSTALL_HINT}");
                }
                format!("cannot run redis-server: {e}")
            })?;
        watchdog(child.id());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let up = if self.tls {
                self.cli(&["PING"]) == "PONG"
            } else {
                ping(self.port)
            };
            if up {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited with {status}; its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The port the server listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server process is running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, as in a crash) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections but answers
    /// nothing, like a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`RedisServer::pause`]d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "kill {signal} redis-server failed"
            );
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    ///
    /// # Panics
    /// When it does not come up in time.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(error) = self.spawn() {
            panic!("could not restart redis-server: {error}");
        }
    }

    /// Runs `redis-cli -p port --raw ARGS` and returns its output, trimmed.
    ///
    /// # Panics
    /// When `redis-cli` cannot be run or does not finish within 30 s.
    pub fn cli(&self, args: &[&str]) -> String {
        if self.tls {
            let ca = self.dir.join("ca.crt").to_string_lossy().into_owned();
            let mut all = vec!["--tls", "--cacert", ca.as_str()];
            all.extend(args);
            return cli(self.port, false, &all);
        }
        cli(self.port, false, args)
    }

    /// How many times `command` (lower case, e.g. `"evalsha"`) ran since
    /// start or the last [`RedisServer::reset_stats`], from `INFO commandstats`.
    #[must_use]
    pub fn calls(&self, command: &str) -> u64 {
        command_calls(&self.cli(&["INFO", "commandstats"]), command)
    }

    /// Every command's call count from `INFO commandstats`.
    #[must_use]
    pub fn all_calls(&self) -> Vec<(String, u64)> {
        parse_commandstats(&self.cli(&["INFO", "commandstats"]))
    }

    /// Zeroes the command statistics (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        let _ = self.cli(&["CONFIG", "RESETSTAT"]);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Sentinel set-up on free ports: a primary, two replicas and three
/// sentinels watching it as one service (quorum 2, a primary is down after
/// 1 s without an answer).
#[derive(Debug)]
pub struct RedisSentinel {
    /// The servers: the first started as the primary, the others as its
    /// replicas (after a failover, any of them may be the primary).
    pub servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    service: String,
}

impl RedisSentinel {
    /// The service name the sentinels watch.
    pub const SERVICE: &'static str = "sessionkit";

    /// Starts the set-up and waits (bounded) until every replica is in sync
    /// and every sentinel knows both replicas and the other sentinels.
    ///
    /// # Panics
    /// When `redis-server` is missing or the set-up does not form in time.
    #[must_use]
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let port = primary.port;
        let mut servers = vec![primary];
        for _ in 0..2 {
            servers.push(RedisServer::start_role(false, false, Role::ReplicaOf(port)));
        }
        let sentinels = (0..3)
            .map(|_| {
                RedisServer::start_role(false, false, Role::Sentinel(port, Self::SERVICE.into()))
            })
            .collect();
        let set = Self {
            servers,
            sentinels,
            service: Self::SERVICE.to_owned(),
        };
        set.wait_until("replicas in sync and sentinels acquainted", |set| {
            let info = set.servers[0].cli(&["INFO", "replication"]);
            let synced = info.matches("state=online").count() == 2;
            let known = set.sentinels.iter().all(|s| {
                let master = s.cli(&["SENTINEL", "MASTER", &set.service]);
                field_after(&master, "num-slaves") == Some("2")
                    && field_after(&master, "num-other-sentinels") == Some("2")
            });
            synced && known
        });
        set
    }

    /// `redis://127.0.0.1:port` of every sentinel.
    #[must_use]
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The port of the primary as the first answering sentinel names it.
    #[must_use]
    pub fn primary_port(&self) -> u16 {
        for sentinel in &self.sentinels {
            if !sentinel.is_running() {
                continue;
            }
            let out = sentinel.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.service]);
            if let Some(port) = out.lines().nth(1).and_then(|p| p.trim().parse().ok()) {
                return port;
            }
        }
        panic!("no sentinel names a primary");
    }

    /// The server that is the primary now.
    ///
    /// # Panics
    /// When no server of the set-up has that port.
    pub fn primary(&mut self) -> &mut RedisServer {
        let port = self.primary_port();
        self.servers
            .iter_mut()
            .find(|s| s.port == port)
            .expect("the primary is one of the servers")
    }

    /// Waits (bounded) until every replica of the primary has everything
    /// written so far (`WAIT`), so a failover loses nothing acknowledged.
    /// After a failover a replica may still be re-attaching to the new
    /// primary, so `WAIT` is asked again until both acknowledge.
    pub fn sync_replicas(&mut self) {
        self.wait_until("both replicas to acknowledge every write (WAIT 2)", |set| {
            let port = set.primary_port();
            cli(port, false, &["WAIT", "2", "1000"]) == "2"
        });
    }

    /// Asks the sentinels for a failover (`SENTINEL FAILOVER`), then waits
    /// (bounded) until they name another primary, that primary says it is
    /// one, and the old primary says it is a replica. Returns the new
    /// primary's port.
    pub fn failover(&mut self) -> u16 {
        let old = self.primary_port();
        let answer = self.sentinels[0].cli(&["SENTINEL", "FAILOVER", &self.service]);
        assert_eq!(answer, "OK", "SENTINEL FAILOVER said {answer}");
        self.wait_until("the failover to finish", |set| {
            let new = set.primary_port();
            new != old
                && role_of(new) == "master"
                && set
                    .servers
                    .iter()
                    .find(|s| s.port == old)
                    .is_none_or(|s| !s.is_running() || role_of(old) == "slave")
        });
        self.primary_port()
    }

    /// Kills the primary (`kill -9`), then waits (bounded) until the
    /// sentinels have promoted a replica. Returns the new primary's port.
    pub fn kill_primary(&mut self) -> u16 {
        let old = self.primary_port();
        self.primary().stop();
        self.wait_until("a replica to be promoted", |set| {
            let new = set.primary_port();
            new != old && role_of(new) == "master"
        });
        self.primary_port()
    }

    /// The worst case for asynchronous replication: the replicas are frozen
    /// (SIGSTOP) for `lag` while the primary keeps acknowledging writes, then
    /// the primary is killed and the replicas resumed; waits (bounded) until
    /// one is promoted. Returns the new primary's port. (`lag` is the
    /// scenario's replication delay, not a wait for anything.)
    pub fn kill_primary_while_replicas_lag(&mut self, lag: Duration) -> u16 {
        let old = self.primary_port();
        for server in self
            .servers
            .iter()
            .filter(|s| s.port != old && s.is_running())
        {
            server.pause();
        }
        sleep(lag);
        self.primary().stop();
        for server in self
            .servers
            .iter()
            .filter(|s| s.port != old && s.is_running())
        {
            server.resume();
        }
        self.wait_until("a replica to be promoted", |set| {
            let new = set.primary_port();
            new != old && role_of(new) == "master"
        });
        self.primary_port()
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "Sentinel set-up: waited {CLUSTER_TIMEOUT:?} for {what}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

/// The `ROLE` of the server on `port` (`master`, `slave`), or `down`.
fn role_of(port: u16) -> String {
    if !ping(port) {
        return "down".into();
    }
    cli(port, false, &["ROLE"])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// In `redis-cli --raw` output of alternating names and values, the value
/// after `name`.
fn field_after<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name {
            return lines.next().map(str::trim);
        }
    }
    None
}

/// A three-master Redis Cluster (no replicas) on free ports.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three `--cluster-enabled` servers, joins them with
    /// `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server` is missing or the cluster does not form in time.
    #[must_use]
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_kind(true, false))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cli(nodes[0].port, false, &args);
        let cluster = Self { nodes };
        cluster.wait_ok(&format!("`redis-cli --cluster create` said:\n{out}"));
        cluster
    }

    fn wait_ok(&self, context: &str) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !self
            .nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}; {context}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Kills every node (SIGKILL).
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Starts every node again on its port with its `nodes.conf`, and waits
    /// until the cluster reports ok (the data is gone: no persistence).
    ///
    /// # Panics
    /// When the cluster does not come back in time.
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            node.restart();
        }
        self.wait_ok("after restarting every node");
    }

    /// Freezes every node (SIGSTOP).
    pub fn pause_all(&self) {
        for node in &self.nodes {
            node.pause();
        }
    }

    /// Lets every frozen node run again (SIGCONT).
    pub fn resume_all(&self) {
        for node in &self.nodes {
            node.resume();
        }
    }

    /// One cluster per test process, started on first use. Give each test
    /// its own key prefix.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// The nodes' `redis://` URLs.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Runs `redis-cli -c` (following redirects) against the first node.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.nodes[0].port, true, args)
    }

    /// The keys matching `pattern` on all nodes.
    #[must_use]
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| lines(&n.cli(&["KEYS", pattern])))
            .collect();
        keys.sort();
        keys
    }

    /// How many times `command` ran on all nodes together.
    #[must_use]
    pub fn calls(&self, command: &str) -> u64 {
        self.nodes.iter().map(|n| n.calls(command)).sum()
    }

    /// Zeroes the command statistics on all nodes.
    pub fn reset_stats(&self) {
        for node in &self.nodes {
            node.reset_stats();
        }
    }
}

/// The non-empty lines of `text`.
#[must_use]
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A key prefix no other test in this process uses.
#[must_use]
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t{}:{test}:", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn check_installed() {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    assert!(found, "{INSTALL_HINT}");
}

/// A CA and a server certificate for `127.0.0.1` signed by it, in `dir`.
pub(crate) fn make_certificates(dir: &std::path::Path) -> Result<(), String> {
    if dir.join("server.crt").is_file() {
        return Ok(());
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .map_err(|e| e.to_string())?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sessionkit test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!("cannot run openssl ({e}): install it with `apt-get install openssl`")
            })?;
        if !out.status.success() {
            return Err(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

fn cli(port: u16, follow: bool, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"]);
    if follow {
        cmd.arg("-c");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); {INSTALL_HINT}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-cli {args:?} did not finish within 30 s");
        }
        sleep(Duration::from_millis(5));
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut out);
    }
    out.trim().to_owned()
}

fn parse_commandstats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn command_calls(info: &str, command: &str) -> u64 {
    parse_commandstats(info)
        .into_iter()
        .find(|(name, _)| name == command)
        .map_or(0, |(_, calls)| calls)
}

/// Whether a server on `port` answers `PING` within 500 ms.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A port nothing listens on; for a cluster node also its bus port (+10000).
fn free_port(cluster: bool) -> u16 {
    for _ in 0..200 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let port = addr.port();
        if !cluster {
            return port;
        }
        if port <= 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node after 200 tries");
}

fn temp_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sessionkit-redis-{}-{}-{port}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Kills `pid` once this test process is gone (statics are never dropped),
/// and exits by itself when `pid` exits first.
fn watchdog(pid: u32) {
    watch(pid, &pid.to_string());
}

/// As [`watchdog`], for a process that leads its own process group: the
/// whole group is killed (chromedriver and the browsers it started).
pub(crate) fn watchdog_group(pgid: u32) {
    watch(pgid, &format!("-- -{pgid}"));
}

/// A shell loop that runs `kill -s KILL {target}` (a form dash accepts too, with `-- -pgid`) once this process or `pid` is gone.
fn watch(pid: u32, target: &str) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -s KILL {target} 2>/dev/null; exit 0"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

//! Throwaway Redis servers for tests: `redis-server` on a free loopback port
//! with no persistence and a temporary directory, a Sentinel set-up, a
//! three-master Redis Cluster joined with `redis-cli --cluster create`, and
//! one with a replica per master for failover tests.
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
    /// A cluster node's `cluster-node-timeout`, in milliseconds.
    node_timeout_ms: u32,
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
        Self::start_with(cluster, tls, role, 5000)
    }

    fn start_with(cluster: bool, tls: bool, role: Role, node_timeout_ms: u32) -> Self {
        check_installed();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port(cluster);
            let mut server = Self {
                port,
                dir: temp_dir(port),
                cluster,
                node_timeout_ms,
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
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout"])
                .arg(self.node_timeout_ms.to_string())
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
        poll(
            Duration::from_millis(100),
            || done(self),
            || format!("Sentinel set-up: waited {CLUSTER_TIMEOUT:?} for {what}"),
        );
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
        let out = create_cluster(&nodes, 0);
        let cluster = Self { nodes };
        cluster.wait_ok(&format!("`redis-cli --cluster create` said:\n{out}"));
        cluster
    }

    fn wait_ok(&self, context: &str) {
        poll(
            Duration::from_millis(100),
            || {
                self.nodes
                    .iter()
                    .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            },
            || {
                format!("the Redis Cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}; {context}")
            },
        );
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

/// A Redis Cluster of three masters with one replica each, on free ports,
/// with `cluster-node-timeout 1000` so that a replica of a killed master is
/// promoted within a few seconds. Nodes are named by their port; after a
/// failover any node may be a master.
#[derive(Debug)]
pub struct RedisClusterHa {
    nodes: Vec<RedisServer>,
}

/// One line of `CLUSTER NODES`, as much of it as the harness needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeLine {
    id: String,
    port: u16,
    master: bool,
    /// Flagged `fail` or `fail?` by the node whose view this is.
    failed: bool,
    /// A replica's master id.
    master_id: Option<String>,
    /// Slot ranges served (inclusive), without migration markers.
    slots: Vec<(u16, u16)>,
}

/// Parses `CLUSTER NODES` output.
fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next()?.to_owned();
            let addr = parts.next()?;
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = parts.next()?;
            let master_id = parts.next().filter(|m| *m != "-").map(str::to_owned);
            let slots = parts
                .skip(4)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                id,
                port,
                master: flags.split(',').any(|f| f == "master"),
                failed: flags.split(',').any(|f| f == "fail" || f == "fail?"),
                master_id,
                slots,
            })
        })
        .collect()
}

impl RedisClusterHa {
    /// Starts six `--cluster-enabled` servers, joins them with `redis-cli
    /// --cluster create … --cluster-replicas 1`, and waits (bounded) until
    /// every node reports `cluster_state:ok` and every master has its replica
    /// attached and in sync.
    ///
    /// # Panics
    /// When `redis-server` is missing or the cluster does not form in time.
    #[must_use]
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| RedisServer::start_with(true, false, Role::Plain, 1000))
            .collect();
        let out = create_cluster(&nodes, 1);
        let cluster = Self { nodes };
        cluster.wait_until(
            &format!("three masters, each with a replica in sync; `redis-cli --cluster create` said:\n{out}"),
            |c| {
                c.settled()
                    && c.masters().len() == 3
                    && c.masters().iter().all(|&m| c.replica_of(m).is_some_and(link_up))
            },
        );
        cluster
    }

    /// The nodes' `redis://` URLs (masters and replicas).
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The `redis://` URLs of the nodes that are running.
    #[must_use]
    pub fn running_urls(&self) -> Vec<String> {
        self.running().map(RedisServer::url).collect()
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// `CLUSTER NODES` as the first running node sees it.
    fn view(&self) -> Vec<NodeLine> {
        self.running()
            .map(|n| parse_nodes(&n.cli(&["CLUSTER", "NODES"])))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    }

    /// The ports of the masters serving slots (not failed), as the first
    /// running node sees them.
    #[must_use]
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .view()
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of a running, healthy replica of the master on `master`.
    #[must_use]
    pub fn replica_of(&self, master: u16) -> Option<u16> {
        let view = self.view();
        let id = &view.iter().find(|n| n.port == master)?.id;
        view.iter()
            .filter(|n| n.master_id.as_ref() == Some(id) && !n.failed)
            .map(|n| n.port)
            .find(|&p| self.nodes.iter().any(|s| s.port == p && s.is_running()))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    #[must_use]
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self.running().next().expect("a running node");
        let out = node.cli(&["CLUSTER", "KEYSLOT", key]);
        out.parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT said {out}"))
    }

    /// The port of the master serving `slot`.
    ///
    /// # Panics
    /// When no master serves it.
    #[must_use]
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        owner(&self.view(), slot).unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The port of the master that holds `key`'s slot.
    #[must_use]
    pub fn master_of(&self, key: &str) -> u16 {
        self.master_of_slot(self.slot_of(key))
    }

    /// The node id of the server on `port` (`CLUSTER MYID`).
    #[must_use]
    pub fn node_id(&self, port: u16) -> String {
        cli(port, false, &["CLUSTER", "MYID"])
    }

    /// Runs `redis-cli` against the node on `port`, not following redirects.
    #[must_use]
    pub fn cli_at(&self, port: u16, args: &[&str]) -> String {
        cli(port, false, args)
    }

    /// Runs `redis-cli -c` (following redirects) against a running master.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.masters().first().copied().expect("a master");
        cli(port, true, args)
    }

    /// How many times `command` ran on the node on `port`.
    #[must_use]
    pub fn calls_at(&self, port: u16, command: &str) -> u64 {
        command_calls(&cli(port, false, &["INFO", "commandstats"]), command)
    }

    /// Waits (bounded) until the replica of every master that has a running
    /// one has everything that master holds now: the replica's offset
    /// reaches the master's `master_repl_offset` as read at the call.
    /// (`WAIT` from `redis-cli` would not do: it waits only for that
    /// connection's own writes, and a fresh connection has none.)
    pub fn sync_replicas(&self) {
        let targets: Vec<(u16, u64)> = self
            .masters()
            .into_iter()
            .filter_map(|m| {
                let replica = self.replica_of(m)?;
                let offset = info_number(
                    &cli(m, false, &["INFO", "replication"]),
                    "master_repl_offset",
                )?;
                Some((replica, offset))
            })
            .collect();
        self.wait_until("every replica to reach its master's offset", |_| {
            targets.iter().all(|&(replica, offset)| {
                let info = cli(replica, false, &["INFO", "replication"]);
                info.contains("master_link_status:up")
                    && info_number(&info, "slave_repl_offset").is_some_and(|o| o >= offset)
            })
        });
    }

    /// A planned failover of the master on `master`: `CLUSTER FAILOVER` sent
    /// to its replica (which first catches up, so nothing is lost), then a
    /// bounded wait until the replica says it is a master, the old master says
    /// it is a replica, and every running node agrees on the new owner of the
    /// slots. Returns the new master's port.
    ///
    /// # Panics
    /// When the master has no replica or the failover does not finish in time.
    pub fn failover(&self, master: u16) -> u16 {
        // Just after a failover the demoted master may still be
        // re-attaching as a replica: wait for one (bounded).
        self.wait_until("the master to have a replica", |c| {
            c.replica_of(master).is_some()
        });
        let replica = self
            .replica_of(master)
            .unwrap_or_else(|| panic!("the master on {master} has no replica"));
        let slot = self.first_slot(master);
        let answer = cli(replica, false, &["CLUSTER", "FAILOVER"]);
        assert_eq!(answer, "OK", "CLUSTER FAILOVER said {answer}");
        self.wait_until("the replica to take over (CLUSTER FAILOVER)", |c| {
            role_of(replica) == "master" && role_of(master) == "slave" && c.agree(slot, replica)
        });
        replica
    }

    /// Kills the master on `master` (`kill -9`), then waits (bounded) until
    /// its replica is promoted, every running node reports
    /// `cluster_state:ok`, and they agree on the new owner of the slots.
    /// Returns the new master's port.
    ///
    /// # Panics
    /// When the master has no replica or none is promoted in time.
    pub fn kill_master(&mut self, master: u16) -> u16 {
        // Just after a failover the demoted master may still be
        // re-attaching as a replica: wait for one (bounded).
        self.wait_until("the master to have a replica", |c| {
            c.replica_of(master).is_some()
        });
        let replica = self
            .replica_of(master)
            .unwrap_or_else(|| panic!("the master on {master} has no replica"));
        let slot = self.first_slot(master);
        self.node_mut(master).stop();
        self.wait_until("the replica of the killed master to be promoted", |c| {
            role_of(replica) == "master" && c.agree(slot, replica)
        });
        replica
    }

    /// Kills the node on `port` (`kill -9`) and waits for nothing: for a
    /// replica, so that its master has none left to acknowledge writes.
    pub fn stop_node(&mut self, port: u16) {
        self.node_mut(port).stop();
    }

    /// Starts a killed node again on its port; it rejoins as a replica of
    /// the master that replaced it. Waits (bounded) until it is attached.
    pub fn restart(&mut self, port: u16) {
        self.node_mut(port).restart();
        self.wait_until("the restarted node to rejoin as a replica", |c| {
            c.settled() && role_of(port) == "slave" && link_up(port)
        });
    }

    /// Starts migrating `slot` from the master on `from` to the one on `to`
    /// (`CLUSTER SETSLOT … IMPORTING` on the target, `… MIGRATING` on the
    /// source): from now on the source answers `ASK` for the slot's keys it
    /// no longer has.
    pub fn begin_migration(&self, slot: u16, from: u16, to: u16) {
        let slot = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let a = cli(
            to,
            false,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
        );
        let b = cli(
            from,
            false,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
        );
        assert_eq!((a.as_str(), b.as_str()), ("OK", "OK"), "CLUSTER SETSLOT");
    }

    /// Moves every key of `slot` from `from` to `to` (`MIGRATE … KEYS`).
    /// Returns how many were moved.
    pub fn migrate_keys(&self, slot: u16, from: u16, to: u16) -> usize {
        let keys = lines(&cli(
            from,
            false,
            &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"],
        ));
        if keys.is_empty() {
            return 0;
        }
        let port = to.to_string();
        let mut args = vec![
            "MIGRATE",
            "127.0.0.1",
            port.as_str(),
            "",
            "0",
            "5000",
            "KEYS",
        ];
        args.extend(keys.iter().map(String::as_str));
        let answer = cli(from, false, &args);
        assert_eq!(answer, "OK", "MIGRATE said {answer}");
        keys.len()
    }

    /// Ends a migration: `slot` belongs to `to` (`CLUSTER SETSLOT … NODE` on
    /// the target, the source and the other masters), and waits (bounded)
    /// until every running node says so. Clients that still route the slot
    /// to the source get `MOVED`.
    pub fn finish_migration(&self, slot: u16, from: u16, to: u16) {
        let (id, slot_text) = (self.node_id(to), slot.to_string());
        let mut order = vec![to, from];
        order.extend(
            self.masters()
                .into_iter()
                .filter(|m| *m != to && *m != from),
        );
        for port in order {
            let answer = cli(
                port,
                false,
                &["CLUSTER", "SETSLOT", &slot_text, "NODE", &id],
            );
            assert_eq!(answer, "OK", "CLUSTER SETSLOT NODE on {port} said {answer}");
        }
        self.wait_until("every node to agree on the migrated slot", |c| {
            c.agree(slot, to)
        });
    }

    fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on {port}"))
    }

    fn first_slot(&self, master: u16) -> u16 {
        self.view()
            .into_iter()
            .find(|n| n.port == master)
            .and_then(|n| n.slots.first().map(|r| r.0))
            .unwrap_or_else(|| panic!("the node on {master} serves no slot"))
    }

    /// Every running node reports `cluster_state:ok`.
    fn settled(&self) -> bool {
        self.running()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    }

    /// Every running node reports `cluster_state:ok` and sees `port` as the
    /// master serving `slot`.
    fn agree(&self, slot: u16, port: u16) -> bool {
        self.settled()
            && self
                .running()
                .all(|n| owner(&parse_nodes(&n.cli(&["CLUSTER", "NODES"])), slot) == Some(port))
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        poll(
            Duration::from_millis(50),
            || done(self),
            || format!("Redis Cluster with replicas: waited {CLUSTER_TIMEOUT:?} for {what}"),
        );
    }
}

/// The port of the (not failed) master serving `slot` in a `CLUSTER NODES` view.
fn owner(view: &[NodeLine], slot: u16) -> Option<u16> {
    view.iter()
        .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
        .map(|n| n.port)
}

/// Whether the replica on `port` has its link to its master up.
fn link_up(port: u16) -> bool {
    cli(port, false, &["INFO", "replication"]).contains("master_link_status:up")
}

/// `name:<number>` in `INFO` output.
fn info_number(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Checks `done` every `every` until it holds; after [`CLUSTER_TIMEOUT`],
/// panics with `failure`'s message (the set-ups' bounded waits).
fn poll(every: Duration, done: impl Fn() -> bool, failure: impl Fn() -> String) {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{}", failure());
        sleep(every);
    }
}

/// `redis-cli --cluster create` of `nodes` with `replicas` replicas per
/// master; what it printed.
fn create_cluster(nodes: &[RedisServer], replicas: u8) -> String {
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let replicas = replicas.to_string();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", replicas.as_str(), "--cluster-yes"]);
    cli(nodes[0].port, false, &args)
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

/// How long a read cache may take to turn tracking on.
const READ_CACHE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the read cache of `store` (its first load spawns the tracking
/// connection) and waits until it serves loads from memory; bounded.
///
/// # Panics
/// If the store has no read cache, a load fails, or tracking is not on in
/// time.
pub async fn read_cache_ready(store: &sessionkit::RedisStore) {
    use sessionkit::store::SessionStore;
    let probe = sessionkit::id::SessionId::parse("read-cache-probe-0000").expect("id");
    store.load(&probe, 0).await.expect("a first load");
    let start = Instant::now();
    loop {
        let stats = store.read_cache_stats().expect("the read cache is on");
        if stats.coherent {
            return;
        }
        assert!(
            start.elapsed() < READ_CACHE_TIMEOUT,
            "the read cache's tracking connection did not come up: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_parsed() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed]
67ed 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315228 2 disconnected 5461-10922 16000
";
        let view = parse_nodes(text);
        assert_eq!(view.len(), 3);
        assert_eq!(view[0].master_id.as_deref(), Some("e7d1"));
        assert!(!view[0].master && !view[0].failed);
        assert_eq!(
            (view[1].port, view[1].slots.clone()),
            (30001, vec![(0, 5460)])
        );
        assert!(view[2].failed);
        assert_eq!(view[2].slots, vec![(5461, 10922), (16000, 16000)]);
        assert_eq!(owner(&view, 100), Some(30001));
        assert_eq!(owner(&view, 6000), None, "a failed master serves nothing");
        assert_eq!(
            info_number(
                "role:slave\r\nslave_repl_offset:42\r\n",
                "slave_repl_offset"
            ),
            Some(42)
        );
    }
}

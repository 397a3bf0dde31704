//! Throwaway PostgreSQL servers for tests: `initdb` into a private
//! temporary directory, then `postgres` on a free loopback port (no Unix
//! socket, no durability), stopped when the handle is dropped.
//!
//! Tests never use a server someone else started and never skip: without
//! PostgreSQL's server binaries they fail with the command that installs
//! them. As root, `initdb` and `postgres` run as the unprivileged
//! `postgres` user (PostgreSQL refuses to run as root). Every wait is
//! bounded. Stopping is an immediate shutdown (every connection dropped at
//! once, as in a crash); a watchdog stops the server and removes its
//! directory when the test process exits, for servers shared through a
//! `static`.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "the PostgreSQL tests start their own server, but PostgreSQL's \
    server binaries (initdb, postgres, pg_isready, psql) were not found under \
    /usr/lib/postgresql/*/bin or on PATH: install them with `apt-get install postgresql` \
    (Debian/Ubuntu) or `brew install postgresql` (macOS), or point SESSIONKIT_PG_BIN at \
    the directory that holds them";

/// How long `initdb` may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A `postgres` server process on `127.0.0.1:port`, user `postgres`
/// (trust authentication), database `postgres`.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    /// The temporary directory: `data/` (the cluster) and `server.log`.
    dir: PathBuf,
    bin: PathBuf,
    /// The user the server runs as when the tests run as root.
    user: Option<(u32, u32)>,
    /// Whether the server also speaks TLS (`ssl=on`, a certificate for
    /// 127.0.0.1 signed by a throwaway CA).
    tls: bool,
    child: Option<Child>,
}

impl PostgresServer {
    /// Creates a cluster in a temporary directory, starts a server on a free
    /// port and waits until it accepts connections.
    ///
    /// # Panics
    /// When the binaries are missing (saying how to install them) or the
    /// server does not come up in time.
    #[must_use]
    pub fn start() -> Self {
        Self::start_kind(false)
    }

    /// As [`PostgresServer::start`], with TLS on (`ssl=on`) and a
    /// certificate for `127.0.0.1` signed by a throwaway CA made with
    /// `openssl` ([`PostgresServer::ca_pem`]); clients may still connect in
    /// the clear.
    ///
    /// # Panics
    /// As [`PostgresServer::start`], or when `openssl` is missing.
    #[must_use]
    pub fn start_tls() -> Self {
        Self::start_kind(true)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    ///
    /// # Panics
    /// When the server was not started with TLS.
    #[must_use]
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("a TLS server has a CA certificate")
    }

    fn start_kind(tls: bool) -> Self {
        let bin = bin_dir();
        let user = run_as();
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if let Some((uid, gid)) = user {
            for path in [dir.as_path(), &dir.join("data")] {
                chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot give {} to postgres: {e}", path.display()));
            }
        }
        if tls {
            crate::redis_server::make_certificates(&dir).unwrap_or_else(|e| panic!("{e}"));
            let key = dir.join("server.key");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap_or_else(|e| panic!("cannot restrict {}: {e}", key.display()));
            if let Some((uid, gid)) = user {
                for name in ["server.key", "server.crt"] {
                    chown(dir.join(name), Some(uid), Some(gid))
                        .unwrap_or_else(|e| panic!("cannot give {name} to postgres: {e}"));
                }
            }
        }
        let mut server = Self {
            port: 0,
            dir,
            bin,
            user,
            tls,
            child: None,
        };
        server.initdb();
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => {
                    server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
                    return server;
                }
                // Another process may have taken the port between our probe
                // and the server's bind: try another.
                Err(error) => last_error = error,
            }
        }
        panic!("could not start postgres: {last_error}");
    }

    /// One server per test process, started on first use. Give each test
    /// its own table name ([`unique_table`]).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        // The unprivileged user may not enter the test's working directory.
        cmd.current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run initdb ({e}); {INSTALL_HINT}"));
        let out = wait_output(out, INITDB_TIMEOUT, "initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot share the log file: {e}"))?;
        let port = self.port.to_string();
        let mut command = self.command("postgres");
        if self.tls {
            command
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("server.key").display()
                ));
        }
        let mut child = command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &port])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "shared_preload_libraries=pg_stat_statements"])
            .args(["-c", "pg_stat_statements.track=top"])
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        watchdog(child.id(), &self.dir);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ready() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "postgres on port {} exited with {status}; its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "postgres on port {} did not accept connections within {START_TIMEOUT:?}; its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server accepts connections (`pg_isready`).
    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The port the server listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:port/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server abruptly, as a crash would for its clients: an
    /// immediate shutdown (SIGQUIT: every backend is killed at once, no
    /// checkpoint, crash recovery on the next start), SIGKILL if it takes
    /// more than 10 s; waits until the postmaster has exited, which it does
    /// only after every backend (each in its own session, out of reach of
    /// a group signal) is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-QUIT");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                sleep(Duration::from_millis(10));
            }
        }
    }

    /// Freezes the server like a hung host: SIGSTOP to the postmaster and
    /// to every process it forked (backends, background workers), by pid.
    /// Connections stay open and the port keeps accepting TCP connections
    /// (the kernel's backlog), but nothing answers. Returns the pids
    /// stopped; [`PostgresServer::resume`] continues them.
    ///
    /// # Panics
    /// When the server is not running or a signal cannot be sent.
    pub fn pause(&self) -> Vec<u32> {
        let pids = self.processes();
        for &pid in &pids {
            signal_checked(pid, "-STOP");
        }
        pids
    }

    /// Lets the processes of a [`PostgresServer::pause`] run again
    /// (SIGCONT, by pid).
    ///
    /// # Panics
    /// When a signal cannot be sent.
    pub fn resume(&self, pids: &[u32]) {
        for &pid in pids {
            signal_checked(pid, "-CONT");
        }
    }

    /// The postmaster's pid, then its children's (from `/proc/<pid>/stat`).
    fn processes(&self) -> Vec<u32> {
        let postmaster = self
            .child
            .as_ref()
            .map(Child::id)
            .expect("the server is running");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 4 (ppid), counted after the parenthesized command name.
            let parent = stat
                .rfind(')')
                .and_then(|at| stat[at + 1..].split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Starts the server again on the same port and data directory (after
    /// crash recovery, with whatever it had written).
    ///
    /// # Panics
    /// When it does not come up in time.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(error) = self.spawn() {
            panic!("could not restart postgres: {error}");
        }
    }

    /// Runs `sql` with `psql` (unaligned, tuples only, stop on the first
    /// error) and returns its output, trimmed: one line per row, columns
    /// separated by `|`.
    ///
    /// # Panics
    /// When `psql` cannot be run, fails, or does not finish within 30 s.
    pub fn psql(&self, sql: &str) -> String {
        let child = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run psql ({e}); {INSTALL_HINT}"));
        let out = wait_output(child, Duration::from_secs(30), "psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Zeroes `pg_stat_statements`.
    pub fn reset_stats(&self) {
        let _ = self.psql("SELECT pg_stat_statements_reset()");
    }

    /// The statements executed since the last [`PostgresServer::reset_stats`]
    /// whose text contains `needle` (top-level statements only: what a client
    /// sent, not what a function ran inside), as (calls, query text).
    #[must_use]
    pub fn statements(&self, needle: &str) -> Vec<(u64, String)> {
        let needle = needle.replace('\'', "''");
        self.psql(&format!(
            "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements \
             WHERE query LIKE '%{needle}%' AND query NOT LIKE '%pg_stat_statements%' \
             ORDER BY query"
        ))
        .lines()
        .filter_map(|line| {
            let (calls, query) = line.split_once('|')?;
            Some((calls.parse().ok()?, query.to_owned()))
        })
        .collect()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A table name no other test in this process uses (lower case, for the
/// store's identifier rules).
#[must_use]
pub fn unique_table(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(28)
        .collect();
    name.insert_str(0, &format!("t{}_", NEXT.fetch_add(1, Ordering::Relaxed)));
    name
}

/// Where the server binaries are: `SESSIONKIT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else `PATH`.
fn bin_dir() -> PathBuf {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("SESSIONKIT_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_all(&dir),
            "SESSIONKIT_PG_BIN={}: {INSTALL_HINT}",
            dir.display()
        );
        return dir;
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return dir;
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| has_all(dir)))
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// The (uid, gid) to run the server as: `postgres`'s when this process is
/// root, else none (run as ourselves).
fn run_as() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    let uid = id(&["-u", "postgres"]);
    let gid = id(&["-g", "postgres"]);
    match (uid, gid) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => panic!(
            "the PostgreSQL tests run as root, and PostgreSQL refuses to: they need the \
             unprivileged `postgres` user to run the server as (`apt-get install postgresql` \
             creates it; or `useradd --system postgres`)"
        ),
    }
}

fn wait_output(mut child: Child, timeout: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {timeout:?}");
            }
            Ok(None) => sleep(Duration::from_millis(10)),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "sessionkit-pg-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Once this test process is gone (statics are never dropped), shuts the
/// server down (immediate, then SIGKILL) and removes its directory; exits
/// by itself when the server stops first (a stop or restart, which cleans
/// up on its own).
fn watchdog(pid: u32, dir: &Path) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do kill -0 {pid} 2>/dev/null || exit 0; sleep 1; done; \
         kill -QUIT {pid} 2>/dev/null; sleep 2; kill -9 {pid} 2>/dev/null; sleep 1; rm -rf '{}'",
        dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn signal_checked(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill {signal} {pid} (a postgres process) failed"
    );
}

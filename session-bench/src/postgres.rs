//! The benchmark's own PostgreSQL server, started the way the tests'
//! harness (`tests/src/postgres_server.rs`) starts one: `initdb` into a
//! private temporary directory, then `postgres` on a free loopback port (no
//! Unix socket, no durability: `fsync`, `synchronous_commit` and
//! `full_page_writes` off, the same for every mode), with
//! `pg_stat_statements` loaded to count the statements clients send. As
//! root, `initdb` and `postgres` run as the unprivileged `postgres` user
//! (PostgreSQL refuses to run as root). Every wait is bounded; dropping the
//! handle stops the server (immediate shutdown of this postmaster, by its
//! pid) and removes its directory.

use std::collections::BTreeMap;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// How long `initdb` may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `psql` call may take (a `DROP DATABASE` of a million
/// sessions, a `VACUUM`, included).
const PSQL_TIMEOUT: Duration = Duration::from_secs(600);

const INSTALL_HINT: &str = "the PostgreSQL modes start their own server, but PostgreSQL's \
    server binaries (initdb, postgres, pg_isready, psql) were not found under \
    /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql`, or point \
    POSTGRES_BIN at the directory that holds them";

/// CPU ticks of a PostgreSQL server's processes at one moment, by pid.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    ticks: BTreeMap<u32, u64>,
}

impl CpuSample {
    /// CPU ticks spent since `before` by the processes running now: each
    /// one's ticks less what it had in `before` (none if it started since,
    /// e.g. a pool's new connection). A process that exited in between is
    /// left out: the backend of the statistics query taken just before a
    /// run, which must not count, and rarely a pool's closed connection.
    pub fn ticks_since(&self, before: &CpuSample) -> u64 {
        self.ticks
            .iter()
            .map(|(pid, now)| now.saturating_sub(before.ticks.get(pid).copied().unwrap_or(0)))
            .sum()
    }
}

/// A private `postgres` on `127.0.0.1:port`, user `postgres` (trust
/// authentication).
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    /// The temporary directory: `data/` (the cluster) and `server.log`.
    dir: PathBuf,
    bin: PathBuf,
    /// (uid, gid) of `postgres` when this process is root.
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Creates a cluster in a temporary directory and starts the server on
    /// a free port, pinned with `taskset -c cpu` (its backends inherit the
    /// pinning); waits until it accepts connections.
    ///
    /// # Errors
    /// When the binaries are missing, `initdb` fails or the server does not
    /// come up in time.
    pub fn start(cpu: &str) -> Result<PostgresServer> {
        let bin = bin_dir()?;
        let user = run_as()?;
        let dir = std::env::temp_dir().join(format!("session-bench-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        if let Some((uid, gid)) = user {
            for path in [dir.as_path(), &dir.join("data")] {
                chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to postgres", path.display()))?;
            }
        }
        let mut server = PostgresServer {
            port: 0,
            dir,
            bin,
            user,
            child: None,
        };
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running initdb; {INSTALL_HINT}"))?;
        let out = wait_output(initdb, INITDB_TIMEOUT, "initdb")?;
        ensure!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_error = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn(cpu) {
                Ok(()) => {
                    server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
                    return Ok(server);
                }
                // Another process may have taken the port meanwhile.
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("postgres did not start")))
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        // The unprivileged user may not enter our working directory.
        command
            .current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn spawn(&mut self, cpu: &str) -> Result<()> {
        let log_path = self.dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", cpu])
            .arg(self.bin.join("postgres"))
            .current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let mut child = command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "shared_preload_libraries=pg_stat_statements"])
            .args(["-c", "pg_stat_statements.track=top"])
            .args(["-c", "pg_stat_statements.max=1000"])
            .stdout(log.try_clone().context("cloning the log handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("running postgres; {INSTALL_HINT}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ready() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "postgres on port {} exited with {status}; its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "postgres on port {} did not accept connections within {START_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `postgres://postgres@127.0.0.1:port/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's version line (`postgres --version`).
    pub fn version(&self) -> String {
        Command::new(self.bin.join("postgres"))
            .arg("--version")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Runs `sql` in database `postgres` with `psql` (unaligned, tuples
    /// only, stop on the first error); its output, trimmed.
    ///
    /// # Errors
    /// When psql fails or overruns its time limit.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_in("postgres", sql)
    }

    /// [`PostgresServer::psql`] in another database.
    ///
    /// # Errors
    /// As [`PostgresServer::psql`].
    pub fn psql_in(&self, database: &str, sql: &str) -> Result<String> {
        let child = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database, "-X", "-A", "-t", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running psql; {INSTALL_HINT}"))?;
        let out = wait_output(child, PSQL_TIMEOUT, "psql")?;
        ensure!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Drops database `name` (closing its connections) and creates it
    /// empty: the scale run's FLUSHALL.
    ///
    /// # Errors
    /// As [`PostgresServer::psql`].
    pub fn recreate_database(&self, name: &str) -> Result<()> {
        self.psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(())
    }

    /// utime + stime, in clock ticks, of the postmaster and of every
    /// process it forked that is running now (backends, background
    /// workers), by pid: see [`CpuSample::ticks_since`].
    ///
    /// # Errors
    /// When `/proc` cannot be read.
    pub fn cpu_sample(&self) -> Result<CpuSample> {
        let postmaster = self.pid().context("the server is not running")?;
        let mut ticks = BTreeMap::new();
        ticks.insert(postmaster, process_ticks(postmaster)?);
        for entry in std::fs::read_dir("/proc").context("reading /proc")? {
            let Ok(entry) = entry else { continue };
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
            if parent_pid(&stat) == Some(postmaster) {
                if let Ok(cpu) = crate::measure::parse_proc_stat_cpu_ticks(&stat) {
                    ticks.insert(pid, cpu);
                }
            }
        }
        Ok(CpuSample { ticks })
    }

    /// Statements clients sent so far (top-level, `pg_stat_statements`),
    /// not counting the benchmark's own queries of the statistics.
    ///
    /// # Errors
    /// As [`PostgresServer::psql`].
    pub fn statements(&self) -> Result<u64> {
        let text = self.psql(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
             WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%DATABASE%'",
        )?;
        text.parse()
            .with_context(|| format!("pg_stat_statements answered {text:?}"))
    }

    /// Stops the server: immediate shutdown (SIGQUIT to the postmaster, by
    /// its pid), SIGKILL after 10 s; waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    crate::measure::parse_proc_stat_cpu_ticks(&stat)
}

/// Field 4 (ppid) of `/proc/<pid>/stat`.
fn parent_pid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// `POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("POSTGRES_BIN") {
        let dir = PathBuf::from(dir);
        ensure!(
            has_all(&dir),
            "POSTGRES_BIN={}: {INSTALL_HINT}",
            dir.display()
        );
        return Ok(dir);
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
    debian.pop().map(|(_, dir)| dir).context(INSTALL_HINT)
}

/// `postgres`'s (uid, gid) when this process is root, else none.
fn run_as() -> Result<Option<(u32, u32)>> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return Ok(None);
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => bail!(
            "running as root, and PostgreSQL refuses to: the unprivileged `postgres` user is \
             needed to run the server as (`apt-get install postgresql` creates it)"
        ),
    }
}

fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Result<Output> {
    let deadline = Instant::now() + timeout;
    loop {
        match child
            .try_wait()
            .with_context(|| format!("polling {what}"))?
        {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{what} did not finish within {timeout:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    child
        .wait_with_output()
        .with_context(|| format!("reading {what}'s output"))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

#[cfg(test)]
mod tests {
    use super::{parent_pid, CpuSample};

    #[test]
    fn cpu_counts_only_processes_running_now() {
        let sample = |pairs: &[(u32, u64)]| CpuSample {
            ticks: pairs.iter().copied().collect(),
        };
        let before = sample(&[(1, 100), (2, 50), (3, 7)]);
        // 1 ran 10 more, 2 exited, 4 started and ran 5.
        let after = sample(&[(1, 110), (3, 7), (4, 5)]);
        assert_eq!(after.ticks_since(&before), 15);
    }

    #[test]
    fn the_parent_pid_is_field_four() {
        assert_eq!(
            parent_pid("4242 (postgres: a (b) c) S 17 4242 4242 0 -1"),
            Some(17)
        );
        assert_eq!(parent_pid("no parentheses"), None);
    }
}

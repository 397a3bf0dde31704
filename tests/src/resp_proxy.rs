//! A TCP proxy in front of a Redis server that reads the commands its
//! clients send (RESP arrays of bulk strings) and, when a test asks, holds
//! one command until the test lets it go, or cuts the connection instead of
//! forwarding it. This is how the tests stop a request *between two round
//! trips of one store call* (the principal index step and the record step
//! of a login; the mark and the deletes of a revocation), which no store
//! double above the store can do.
//!
//! It can also hold what the server sends to some connections: those that
//! sent a command a [`RespProxy::mark`] rule accepts, while the test has
//! [`RespProxy::pause_marked`] them (the read cache's tests hold the
//! invalidations Redis pushes on a tracking connection this way).
//!
//! The proxy runs on its own thread and runtime, so a test on any runtime
//! (actix's, tokio's) can use it; its gates are `tokio::sync` primitives,
//! which work across runtimes. Dropping it stops it.
//!
//! ```no_run
//! use sessionkit_tests::resp_proxy::{script_call, RespProxy};
//! # async fn demo(redis_port: u16) {
//! let proxy = RespProxy::start(redis_port);
//! // Hold the first session create (the record step of a login).
//! proxy.hold_once(|cmd| script_call(cmd).is_some_and(|(_, args)| args.first().is_some_and(|a| a == b"c")));
//! // … start the login through `proxy.url()` …
//! proxy.held().await;
//! // … list through another store, straight to Redis …
//! proxy.release();
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// What a matching command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Held until [`RespProxy::release`].
    Hold,
    /// Its connection is closed instead of forwarding it.
    Cut,
}

type Matcher = Box<dyn Fn(&[Vec<u8>]) -> bool + Send>;

/// An armed rule: what it matches, what it does, whether it stays armed.
struct Rule {
    matches: Matcher,
    action: Action,
    once: bool,
}

/// What the proxy's connections share with the test.
struct Shared {
    /// Armed rules; a `once` rule is gone after its first match.
    rules: Mutex<Vec<Rule>>,
    /// How many commands have been held so far.
    held_count: Mutex<usize>,
    /// Told when a command is held.
    arrived: Notify,
    /// One permit per release.
    release: Semaphore,
    /// How many commands matched a cut rule.
    cut_count: AtomicUsize,
    /// Connections that sent a command one of these accepts are marked.
    markers: Mutex<Vec<Matcher>>,
    /// Whether the server's bytes to marked connections are held.
    paused: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn verdict(&self, command: &[Vec<u8>]) -> Option<Action> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let at = rules.iter().position(|rule| (rule.matches)(command))?;
        let action = rules[at].action;
        if rules[at].once {
            rules.remove(at);
        }
        Some(action)
    }
}

/// The proxy (see the module docs).
#[allow(missing_debug_implementations)] // holds a thread and closures
pub struct RespProxy {
    port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RespProxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to Redis on
    /// `127.0.0.1:upstream_port`.
    #[must_use]
    pub fn start(upstream_port: u16) -> Self {
        let shared = Arc::new(Shared {
            rules: Mutex::new(Vec::new()),
            held_count: Mutex::new(0),
            arrived: Notify::new(),
            release: Semaphore::new(0),
            cut_count: AtomicUsize::new(0),
            markers: Mutex::new(Vec::new()),
            paused: tokio::sync::watch::Sender::new(false),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("proxy addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("proxy listener");
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let shared = Arc::clone(&for_thread);
                        tokio::spawn(async move {
                            if let Ok(server) =
                                TcpStream::connect(("127.0.0.1", upstream_port)).await
                            {
                                pump(client, server, shared).await;
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `redis://127.0.0.1:port` of the proxy.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds the next command `matches` accepts (and every later command on
    /// its connection, queued behind it) until [`RespProxy::release`].
    pub fn hold_once(&self, matches: impl Fn(&[Vec<u8>]) -> bool + Send + 'static) {
        self.arm(Box::new(matches), Action::Hold, true);
    }

    /// Until [`RespProxy::disarm`], closes the connection of every command
    /// `matches` accepts instead of forwarding it: its caller, and every
    /// command in flight on that connection, sees the connection drop (a
    /// client that retries on a new connection is cut again).
    pub fn cut_every(&self, matches: impl Fn(&[Vec<u8>]) -> bool + Send + 'static) {
        self.arm(Box::new(matches), Action::Cut, false);
    }

    /// Drops every armed rule (held commands stay held until released).
    pub fn disarm(&self) {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn arm(&self, matches: Matcher, action: Action, once: bool) {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Rule {
                matches,
                action,
                once,
            });
    }

    /// Waits until a command is held (returns at once if one already was
    /// since the last call).
    pub async fn held(&self) {
        loop {
            let notified = self.shared.arrived.notified();
            {
                let mut count = self
                    .shared
                    .held_count
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if *count > 0 {
                    *count -= 1;
                    return;
                }
            }
            notified.await;
        }
    }

    /// Lets one held command (the oldest) go.
    pub fn release(&self) {
        self.shared.release.add_permits(1);
    }

    /// From now on, marks every connection that sends a command `matches`
    /// accepts (for [`RespProxy::pause_marked`]).
    pub fn mark(&self, matches: impl Fn(&[Vec<u8>]) -> bool + Send + 'static) {
        self.shared
            .markers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(matches));
    }

    /// Holds what the server sends to marked connections (replies and push
    /// messages alike, in order) until [`RespProxy::resume_marked`].
    pub fn pause_marked(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Lets marked connections have what the server sent them.
    pub fn resume_marked(&self) {
        self.shared.paused.send_replace(false);
    }

    /// How many connections the cut rules closed.
    #[must_use]
    pub fn cuts(&self) -> usize {
        self.shared.cut_count.load(Ordering::SeqCst)
    }
}

impl Drop for RespProxy {
    fn drop(&mut self) {
        // Held commands go, so no connection is left waiting.
        self.shared.release.add_permits(Semaphore::MAX_PERMITS / 2);
        self.shared.paused.send_replace(false);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Forwards one client connection: the server's bytes back as they come,
/// the client's command by command through the armed rules.
async fn pump(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let marked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let down = {
        let marked = Arc::clone(&marked);
        let mut paused = shared.paused.subscribe();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match from_server.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if marked.load(Ordering::SeqCst) && paused.wait_for(|p| !*p).await.is_err() {
                    break;
                }
                if to_client.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Bytes that are not RESP arrays pass through unread.
    let mut raw = false;
    while let Ok(n) = from_client.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..n]);
        loop {
            if raw {
                if to_server.write_all(&pending).await.is_err() {
                    down.abort();
                    return;
                }
                pending.clear();
                break;
            }
            let (len, command) = match parse(&pending) {
                Parsed::Command(len, command) => (len, command),
                Parsed::Incomplete => break,
                Parsed::NotResp => {
                    raw = true;
                    continue;
                }
            };
            if shared
                .markers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|matches| matches(&command))
            {
                marked.store(true, Ordering::SeqCst);
            }
            match shared.verdict(&command) {
                None => {}
                Some(Action::Hold) => {
                    *shared
                        .held_count
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) += 1;
                    shared.arrived.notify_waiters();
                    if let Ok(permit) = shared.release.acquire().await {
                        permit.forget();
                    }
                }
                Some(Action::Cut) => {
                    shared.cut_count.fetch_add(1, Ordering::SeqCst);
                    down.abort();
                    // Dropping both halves of both sockets closes them.
                    return;
                }
            }
            if to_server.write_all(&pending[..len]).await.is_err() {
                down.abort();
                return;
            }
            pending.drain(..len);
        }
    }
    down.abort();
}

enum Parsed {
    /// A whole command: its length in bytes and its parts.
    Command(usize, Vec<Vec<u8>>),
    Incomplete,
    NotResp,
}

/// The first command in `buf`: `*N\r\n` then N `$len\r\n<bytes>\r\n`.
fn parse(buf: &[u8]) -> Parsed {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[at..at + end], at + end + 2))
    }
    fn number(text: &[u8]) -> Option<usize> {
        std::str::from_utf8(text).ok()?.parse().ok()
    }
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] != b'*' {
        return Parsed::NotResp;
    }
    let Some((head, mut at)) = line(buf, 1) else {
        return Parsed::Incomplete;
    };
    let Some(count) = number(head) else {
        return Parsed::NotResp;
    };
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::NotResp,
        }
        let Some((len, start)) = line(buf, at + 1) else {
            return Parsed::Incomplete;
        };
        let Some(len) = number(len) else {
            return Parsed::NotResp;
        };
        let end = start + len;
        if buf.len() < end + 2 {
            return Parsed::Incomplete;
        }
        parts.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Parsed::Command(at, parts)
}

/// One part of a command (a bulk string).
pub type Part = Vec<u8>;

/// The keys and arguments of an `EVALSHA` / `EVAL` command (`None` for
/// another command).
#[must_use]
pub fn script_call(command: &[Vec<u8>]) -> Option<(&[Part], &[Part])> {
    let name = command.first()?;
    if !name.eq_ignore_ascii_case(b"EVALSHA") && !name.eq_ignore_ascii_case(b"EVAL") {
        return None;
    }
    let keys: usize = std::str::from_utf8(command.get(2)?).ok()?.parse().ok()?;
    let rest = command.get(3..)?;
    (rest.len() >= keys).then(|| rest.split_at(keys))
}

/// The principal-index operation of a script call (`add`, `move`, `mark`,
/// `members`, `drop`, …): its first argument when its key is an index key.
#[must_use]
pub fn index_op(command: &[Vec<u8>]) -> Option<&[u8]> {
    let (keys, args) = script_call(command)?;
    let key = keys.first()?;
    let is_index = key.windows(b"principal:".len()).any(|w| w == b"principal:");
    is_index.then(|| args.first().map(Vec::as_slice)).flatten()
}

/// Whether a script call is a session write of `mode` (`c` create, `u`
/// update, `r` rotate, `s` seal): a call on a session key whose first
/// argument is that mode.
#[must_use]
pub fn is_write(command: &[Vec<u8>], mode: &[u8]) -> bool {
    index_op(command).is_none()
        && script_call(command).is_some_and(|(_, args)| args.first().is_some_and(|a| a == mode))
}

/// Whether a script call is a revocation's conditional delete of one
/// session (its arguments: the principal hash, 43 characters, then the hop
/// limit).
#[must_use]
pub fn is_delete_owned(command: &[Vec<u8>]) -> bool {
    index_op(command).is_none()
        && script_call(command)
            .is_some_and(|(keys, args)| keys.len() == 1 && args.len() >= 2 && args[0].len() == 43)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_whole_or_not_at_all() {
        let cmd = b"*3\r\n$7\r\nEVALSHA\r\n$1\r\nx\r\n$1\r\n0\r\n";
        match parse(cmd) {
            Parsed::Command(len, parts) => {
                assert_eq!(len, cmd.len());
                assert_eq!(
                    parts,
                    vec![b"EVALSHA".to_vec(), b"x".to_vec(), b"0".to_vec()]
                );
            }
            _ => panic!("a whole command"),
        }
        for cut in 0..cmd.len() {
            assert!(matches!(parse(&cmd[..cut]), Parsed::Incomplete), "{cut}");
        }
        assert!(matches!(parse(b"PING\r\n"), Parsed::NotResp));
        let call = [
            b"EVALSHA".to_vec(),
            b"sha".to_vec(),
            b"1".to_vec(),
            b"sessionkit:principal:abc".to_vec(),
            b"mark".to_vec(),
        ];
        assert_eq!(index_op(&call), Some(&b"mark"[..]));
        assert!(!is_write(&call, b"c"));
    }
}

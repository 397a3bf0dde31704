//! What a hostile or broken counterpart gets: logs that never carry stored
//! values or ids, and a Redis that answers what sessionkit never sends.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use sessionkit::clock::ManualClock;
use sessionkit::store::StoreError;
use sessionkit::{MemoryStore, RedisStore, SessionData, SessionError, SessionManager};
use sessionkit_tests::acceptance::request;
use sessionkit_tests::support::TestRequest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(SessionData, Default, Clone, Debug)]
struct Before {
    token: Option<String>,
    visits: u32,
}

/// The same stored field, now with another type: the stored value no longer decodes.
#[derive(SessionData, Default, Clone, Debug)]
struct After {
    token: Option<u64>,
    visits: u32,
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_planted_secret_never_reaches_the_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    let clock = ManualClock::new(1_767_225_600_000);
    let before = SessionManager::<Before>::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let secret = format!("Bearer SECRET-{}", "7".repeat(64));
    let planted = secret.clone();
    let (session, _) = request(&before, &TestRequest::new(), move |s| {
        s.set_token(Some(planted.clone()));
        s.set_visits(3);
    })
    .await
    .unwrap();
    let id = session.id().to_string();

    let after = SessionManager::<After>::builder(store)
        .clock(clock)
        .build()
        .unwrap();
    let cookie = TestRequest::new().cookie("session_id", &id);
    for _ in 0..3 {
        let (s, _) = request(&after, &cookie, |s| s.update_visits(|v| *v += 1))
            .await
            .unwrap();
        assert_eq!(s.token(), None, "the field's default");
    }
    assert_eq!(after.load_by_id(&id).await.unwrap().unwrap().visits(), 6);
    // Malformed ids are logged without their value too.
    let hostile = "x".repeat(200);
    request(
        &after,
        &TestRequest::new().cookie("session_id", &hostile),
        |_| {},
    )
    .await
    .unwrap();

    let text = logs.text();
    assert!(
        text.contains("token"),
        "the warning names the field: {text}"
    );
    assert!(
        text.contains("another type"),
        "and the kind of error: {text}"
    );
    assert!(
        !text.contains("SECRET"),
        "a stored value reached the logs: {text}"
    );
    assert!(!text.contains(&id), "a session id reached the logs: {text}");
    assert!(
        !text.contains(&hostile),
        "a client's id reached the logs: {text}"
    );
    assert!(text.lines().all(|l| l.len() < 1_000), "no giant log line");
}

/// A TCP server speaking just enough RESP to look like Redis: `HGETALL`
/// answers a valid session hash, the write script answers `script_reply`,
/// anything else `+OK`.
async fn fake_redis(script_reply: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let Some(command) = read_command(&mut read).await else {
                        return;
                    };
                    let reply = match command.first().map(|c| c.to_ascii_uppercase()) {
                        Some(c) if c == b"HGETALL" => {
                            let items: [&[u8]; 6] = [
                                b"$meta",
                                b"2:1767225600000:1767225600000:1800000:",
                                b"$at",
                                b"1767225600000",
                                b"visits",
                                &[5],
                            ];
                            let mut out = format!("*{}\r\n", items.len()).into_bytes();
                            for item in items {
                                write!(out, "${}\r\n", item.len()).unwrap();
                                out.extend_from_slice(item);
                                out.extend_from_slice(b"\r\n");
                            }
                            out
                        }
                        Some(c) if c == b"EVALSHA" || c == b"EVAL" => {
                            script_reply.as_bytes().to_vec()
                        }
                        _ => b"+OK\r\n".to_vec(),
                    };
                    if write.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

async fn read_command(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0; len + 2];
        read.read_exact(&mut buf).await.ok()?;
        buf.truncate(len);
        parts.push(buf);
    }
    Some(parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replies_the_scripts_never_send_are_errors() {
    for reply in [
        "+OK\r\n",
        ":42\r\n",
        "$3\r\nabc\r\n",
        "*1\r\n:1\r\n",
        "*2\r\n$5\r\nmoved\r\n:1\r\n",
    ] {
        let url = fake_redis(reply).await;
        let manager = SessionManager::<Before>::new(RedisStore::from_url(url).unwrap());
        let cookie = TestRequest::new().cookie("session_id", "fake-redis-session-000000");
        let result = request(&manager, &cookie, |s| s.update_visits(|v| *v += 1)).await;
        match result {
            Err(SessionError::Store(StoreError::Corrupt(why))) => {
                assert!(why.contains("never expects"), "{reply:?}: {why}");
            }
            other => panic!("{reply:?} must be a store error, got {other:?}"),
        }
    }
}

#[test]
fn start_up_warns_when_the_cookie_is_not_secure_or_not_http_only() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let warnings = |config: sessionkit::Config| {
        let before = logs.text().matches("not Secure or not HttpOnly").count();
        SessionManager::<Before>::builder(MemoryStore::new())
            .config(config)
            .build()
            .unwrap();
        logs.text().matches("not Secure or not HttpOnly").count() - before
    };
    assert_eq!(warnings(sessionkit::Config::default()), 1);
    let plain_http = sessionkit::Config::builder()
        .cookie_http_only(true)
        .build()
        .unwrap();
    assert_eq!(warnings(plain_http), 1);
    let hardened = sessionkit::Config::builder()
        .cookie_http_only(true)
        .cookie_secure(true)
        .build()
        .unwrap();
    assert_eq!(warnings(hardened), 0);
}

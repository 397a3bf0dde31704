//! A real browser for tests: headless Chromium driven over WebDriver
//! (`chromedriver`, through the `fantoccini` client).
//!
//! Like the Redis harness, tests start what they need and never skip: without
//! `chromium` and `chromedriver` they fail with the command that installs
//! them. [`Chromedriver::start`] runs `chromedriver` on a free loopback port in
//! its own process group (killed with every browser in it when dropped, and by
//! a watchdog when the test process dies). [`Chromedriver::open`] starts one
//! browser with a profile directory of the test's choosing: the same directory
//! again is the same browser profile after a restart (its persistent cookies
//! survive, its session cookies do not).
//!
//! [`Flow::run`] runs a test body and, when it panics, saves a screenshot and
//! the page source of every browser the flow opened under
//! `<dir>/browser-failures/<flow>/` before the test fails.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use fantoccini;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use serde_json::json;

const INSTALL_HINT: &str = "the browser tests start their own headless Chromium through \
    chromedriver, but {missing} was not found: install both with \
    `apt-get install chromium chromium-driver` (Debian; set CHROME and CHROMEDRIVER to use \
    other binaries)";

/// How long chromedriver may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary `var` names, or the first of `defaults` on `PATH` (or absolute).
fn find_binary(var: &str, defaults: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    defaults.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn require(var: &str, defaults: &[&str]) -> PathBuf {
    find_binary(var, defaults).unwrap_or_else(|| {
        panic!(
            "{}",
            INSTALL_HINT.replace("{missing}", &format!("`{}`", defaults[0]))
        )
    })
}

/// A `chromedriver` process serving WebDriver on `127.0.0.1:port`.
#[derive(Debug)]
pub struct Chromedriver {
    url: String,
    chrome: PathBuf,
    child: Child,
}

impl Chromedriver {
    /// Starts chromedriver and waits until it accepts connections.
    ///
    /// # Panics
    /// When chromium or chromedriver is missing (saying how to install them)
    /// or chromedriver does not come up in time.
    #[must_use]
    pub fn start() -> Self {
        let driver = require("CHROMEDRIVER", &["chromedriver"]);
        let chrome = require("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: dropping it kills the browsers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", driver.display()));
        crate::redis_server::watchdog_group(child.id());
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromedriver exited with {status} before accepting connections");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            chrome,
            child,
        }
    }

    /// A new headless browser using the profile in `profile` (created if
    /// missing). Close it with [`Client::close`] to restart it later with
    /// the same profile: closing quits the browser, which writes its
    /// persistent cookies to the profile.
    ///
    /// # Panics
    /// When the browser does not start.
    pub async fn open(&self, profile: &Path) -> Client {
        std::fs::create_dir_all(profile).expect("the profile directory");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--password-store=basic".to_owned(),
            "--window-size=1200,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        // Chromium refuses to run as root with its sandbox (CI runs as root).
        if is_root() {
            args.push("--no-sandbox".to_owned());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chrome.to_string_lossy(),
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        builder
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a browser through chromedriver: {e}"))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The browsers a test flow opened, for the failure report.
#[derive(Clone, Default, Debug)]
pub struct Flow {
    name: String,
    dir: PathBuf,
    open: Arc<Mutex<Vec<(String, Client)>>>,
}

impl Flow {
    /// A flow named `name` whose failure report goes under
    /// `dir/browser-failures/name/` (pass `env!("CARGO_TARGET_TMPDIR")`).
    #[must_use]
    pub fn new(name: &str, dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            dir: dir.into(),
            open: Arc::default(),
        }
    }

    /// A fresh profile directory for this flow (emptied first).
    #[must_use]
    pub fn profile(&self, label: &str) -> PathBuf {
        let dir = self
            .dir
            .join("browser-profiles")
            .join(format!("{}-{label}", self.name));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Opens a browser and remembers it as `label` for the failure report.
    pub async fn open(&self, driver: &Chromedriver, label: &str, profile: &Path) -> Client {
        let client = driver.open(profile).await;
        self.open
            .lock()
            .expect("flow lock")
            .push((label.to_owned(), client.clone()));
        client
    }

    /// Closes the browser `label` (and forgets it).
    pub async fn close(&self, label: &str) {
        let client = {
            let mut open = self.open.lock().expect("flow lock");
            open.iter()
                .position(|(l, _)| l == label)
                .map(|i| open.remove(i).1)
        };
        if let Some(client) = client {
            client.close().await.expect("the browser closes");
        }
    }

    /// Runs `body`; on a panic, saves each open browser's screenshot, URL
    /// and page source, then fails with the panic. Closes every browser
    /// either way.
    pub async fn run<F: Future<Output = ()>>(self, body: F) {
        let outcome = AssertUnwindSafe(body).catch_unwind().await;
        let open: Vec<(String, Client)> = std::mem::take(&mut *self.open.lock().expect("lock"));
        if outcome.is_err() {
            let dir = self.dir.join("browser-failures").join(&self.name);
            let _ = std::fs::create_dir_all(&dir);
            for (label, client) in &open {
                if let Ok(png) = client.screenshot().await {
                    let _ = std::fs::write(dir.join(format!("{label}.png")), png);
                }
                let url = client.current_url().await.map(|u| u.to_string());
                let source = client.source().await.unwrap_or_default();
                let _ = std::fs::write(
                    dir.join(format!("{label}.html")),
                    format!("<!-- {url:?} -->\n{source}"),
                );
            }
            eprintln!(
                "browser flow {} failed: screenshots and page sources in {}",
                self.name,
                dir.display()
            );
        }
        for (_, client) in open {
            let _ = client.close().await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Waits for the element `css` selects and returns its text.
///
/// # Panics
/// When it does not appear within [`WAIT`].
pub async fn text_of(client: &Client, css: &str) -> String {
    let element = wait_for(client, css).await;
    element.text().await.expect("the element's text")
}

/// The element `css` selects, once it is on the page.
///
/// # Panics
/// When it does not appear within [`WAIT`].
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css:?} appeared within {WAIT:?}: {e}"))
}

/// Whether an element `css` selects is on the current page (no waiting).
pub async fn exists(client: &Client, css: &str) -> bool {
    !client
        .find_all(Locator::Css(css))
        .await
        .expect("find_all")
        .is_empty()
}

/// Clicks the element `css` selects (waiting for it to appear).
///
/// # Panics
/// When it does not appear within [`WAIT`] or cannot be clicked.
pub async fn click(client: &Client, css: &str) {
    wait_for(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css:?}: {e}"));
}

/// Types `text` into the input `css` selects.
///
/// # Panics
/// When it does not appear within [`WAIT`].
pub async fn type_into(client: &Client, css: &str, text: &str) {
    wait_for(client, css)
        .await
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("cannot type into {css:?}: {e}"));
}

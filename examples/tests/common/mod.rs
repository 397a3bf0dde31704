//! The harness of the gateway tests: both gateway examples served on
//! 127.0.0.1 (port 0) beside their downstream service, and a client that
//! keeps cookies like a browser. Each test binary uses part of it.
#![allow(dead_code, unused_macros)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::dev::{ServerHandle, Service};
use actix_web::http::StatusCode;
use actix_web::HttpServer;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use sessionkit::store::SessionStore;
use sessionkit::{HeaderMapConfig, MemoryStore, SessionManager};
use sessionkit_examples::gateway::{
    dashboard_app, gateway_app, Gateway, GatewayConfig, GatewaySession,
};
use sessionkit_examples::gateway_axum;

/// Which gateway example a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Actix,
    Axum,
}

/// Every test, once per gateway example: `both!(case, …)` at a test
/// file's root, where `Kind` and each `async fn case(kind: Kind)` are in scope.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod on_actix {
            $(
                #[actix_web::test]
                async fn $case() {
                    super::$case(super::Kind::Actix).await;
                }
            )*
        }
        mod on_axum {
            $(
                #[actix_web::test]
                async fn $case() {
                    super::$case(super::Kind::Axum).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)] // gateway_spans.rs does not use it
pub(crate) use both;

pub enum Handle {
    Actix(ServerHandle),
    Axum(tokio::task::JoinHandle<()>),
}

pub struct Servers {
    pub base: String,
    handles: Vec<Handle>,
    /// Requests the downstream service received.
    pub downstream_hits: Arc<AtomicUsize>,
}

impl Servers {
    pub async fn stop(self) {
        for handle in self.handles {
            match handle {
                Handle::Actix(handle) => handle.stop(false).await,
                Handle::Axum(task) => task.abort(),
            }
        }
    }
}

pub async fn serve_axum(router: axum::Router) -> (String, Handle) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (format!("http://{addr}"), Handle::Axum(task))
}

/// Starts an actix server of `factory` on a free port.
macro_rules! serve_actix {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (format!("http://{addr}"), Handle::Actix(handle))
    }};
}

/// The `kind` gateway with `manager` and `headers`, and its downstream service.
pub async fn start_with(
    kind: Kind,
    manager: SessionManager<GatewaySession>,
    headers: &HeaderMapConfig,
) -> Servers {
    start_full(kind, manager, headers, None).await
}

/// As [`start_with`], serving `GET /metrics` from `metrics` when given.
pub async fn start_full(
    kind: Kind,
    manager: SessionManager<GatewaySession>,
    headers: &HeaderMapConfig,
    metrics: Option<PrometheusHandle>,
) -> Servers {
    let downstream_hits = Arc::new(AtomicUsize::new(0));
    let hits = Arc::clone(&downstream_hits);
    let ((down, down_handle), (base, handle)) = match kind {
        Kind::Actix => {
            let downstream = serve_actix!(move || {
                let hits = Arc::clone(&hits);
                dashboard_app().wrap_fn(move |req, srv| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    srv.call(req)
                })
            });
            let mut gateway = Gateway::with_manager(manager, headers, &downstream.0).unwrap();
            if let Some(handle) = metrics {
                gateway = gateway.with_metrics(handle);
            }
            let front = serve_actix!(move || gateway_app(gateway.clone()));
            (downstream, front)
        }
        Kind::Axum => {
            let counting = axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let hits = Arc::clone(&hits);
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        next.run(req).await
                    }
                },
            );
            let downstream = serve_axum(gateway_axum::dashboard_router().layer(counting)).await;
            let mut gateway =
                gateway_axum::Gateway::with_manager(manager, headers, &downstream.0).unwrap();
            if let Some(handle) = metrics {
                gateway = gateway.with_metrics(handle);
            }
            let front = serve_axum(gateway_axum::gateway_router(gateway)).await;
            (downstream, front)
        }
    };
    let _ = down;
    Servers {
        base,
        handles: vec![down_handle, handle],
        downstream_hits,
    }
}

pub fn manager_for(
    config: &GatewayConfig,
    store: impl SessionStore,
) -> SessionManager<GatewaySession> {
    SessionManager::builder(store)
        .config(config.session.clone())
        .build()
        .unwrap()
}

pub async fn start(kind: Kind, config: GatewayConfig) -> Servers {
    start_with(
        kind,
        manager_for(&config, MemoryStore::new()),
        &config.headers,
    )
    .await
}

/// A client that keeps cookies like a browser.
pub struct Browser {
    client: awc::Client,
    base: String,
    pub jar: BTreeMap<String, String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn session_cookie(&self) -> Option<Cookie<'static>> {
        self.headers
            .get_all("set-cookie")
            .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
            .find(|c| c.name() == "session_id")
    }
}

impl Browser {
    pub fn new(servers: &Servers) -> Self {
        Self {
            client: awc::Client::default(),
            base: servers.base.clone(),
            jar: BTreeMap::new(),
        }
    }

    pub fn sid(&self) -> String {
        self.jar.get("session_id").cloned().unwrap_or_default()
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.insert_header(("Cookie", cookies.join("; ")));
        }
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        let mut res = match form {
            Some(form) => req.send_form(&form).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        for value in res.headers().get_all("set-cookie") {
            let cookie = Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            if cookie.value().is_empty() {
                self.jar.remove(cookie.name());
            } else {
                self.jar
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        Answer {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, &[], Some(form)).await
    }

    pub async fn login(&mut self) -> Answer {
        self.post(
            "/login",
            &[("email", "user@example.com"), ("password", "password")],
        )
        .await
    }
}

/// `text` without what differs from run to run: session ids, the
/// downstream service's port, the forwarded `date`.
pub fn mask(text: &str, ids: &[String]) -> String {
    let mut text = ids.iter().fold(text.to_owned(), |text, id| {
        text.replace(id.as_str(), "<sid>")
    });
    for (marker, end) in [("127.0.0.1:", '"'), ("\"date\":\"", '"')] {
        if let Some((head, tail)) = text.split_once(marker) {
            let rest = tail.find(end).map_or("", |at| &tail[at..]);
            text = format!("{head}{marker}<masked>{rest}");
        }
    }
    text
}

/// Method, path, extra headers, form.
pub type Step<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<&'a [(&'a str, &'a str)]>,
);

/// Answers normalized for comparing the two gateways: status, headers
/// (without `date`; session ids masked) and body (ids masked).
#[derive(Default)]
pub struct Transcript {
    ids: Vec<String>,
    /// Headers left out besides `date`.
    ignored: Vec<&'static str>,
    /// One entry per answer.
    pub answers: Vec<String>,
}

impl Transcript {
    /// A transcript that also leaves out the headers `names` (lower case).
    pub fn ignoring(names: &[&'static str]) -> Self {
        Self {
            ignored: names.to_vec(),
            ..Self::default()
        }
    }

    /// Adds `answer` to `method path`; `browser` holds the session ids seen so far.
    pub fn record(&mut self, browser: &Browser, method: &str, path: &str, answer: &Answer) {
        let sid = browser.sid();
        if !sid.is_empty() && !self.ids.contains(&sid) {
            self.ids.push(sid);
        }
        let mut lines: Vec<String> = answer
            .headers
            .iter()
            .filter(|(name, _)| name.as_str() != "date" && !self.ignored.contains(&name.as_str()))
            .map(|(name, value)| format!("{name}: {}", mask(value.to_str().unwrap(), &self.ids)))
            .collect();
        lines.sort();
        let body = mask(&answer.body, &self.ids);
        self.answers.push(format!(
            "{method} {path} -> {}\n{}\n{body}",
            answer.status,
            lines.join("\n")
        ));
    }

    /// Sends every step with `browser`, recording each answer.
    pub async fn run(&mut self, browser: &mut Browser, steps: &[Step<'_>]) {
        for &(method, path, headers, form) in steps {
            let answer = browser.send(method, path, headers, form).await;
            self.record(browser, method, path, &answer);
        }
    }
}

/// Asserts that two transcripts are the same, answer by answer.
#[track_caller]
pub fn assert_alike(actix: &Transcript, axum: &Transcript) {
    for (a, b) in actix.answers.iter().zip(&axum.answers) {
        assert_eq!(a, b);
    }
    assert_eq!(actix.answers.len(), axum.answers.len());
}

/// The sessions of a `GET /sessions` answer: handle and whether it is the caller's.
pub fn handles_of(answer: &Answer) -> Vec<(String, bool)> {
    answer.json()["sessions"]
        .as_array()
        .expect("a sessions array")
        .iter()
        .map(|s| {
            (
                s["handle"].as_str().expect("a handle").to_owned(),
                s["current"].as_bool().expect("current"),
            )
        })
        .collect()
}

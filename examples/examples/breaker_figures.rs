//! Measures what the circuit breaker buys while Redis is frozen: run with
//! `cargo run --release -p sessionkit-examples --example breaker_figures`
//! (starts its own `redis-server`; `redis-server` must be on PATH).
//!
//! 32 clients, each with its own session, send `GET /` (load + save) to the
//! gateway app in-process, back to back, for 7 s. At 1 s Redis is frozen
//! with SIGSTOP, at 4 s it is resumed. Printed: the latency of the requests
//! that started while Redis was frozen and the breaker open (p50, p99, max),
//! when the breaker opened, and how long after the resume the first request
//! was served again; then the same run without the breaker for comparison.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use futures_util::future::join_all;
use sessionkit::breaker::{BreakerState, CircuitBreaker};
use sessionkit::RedisStore;
use sessionkit_examples::gateway::{gateway_app, Gateway, GatewayConfig};
use sessionkit_tests::redis_server::{unique_prefix, RedisServer};

const CLIENTS: usize = 32;
const FREEZE_AT: Duration = Duration::from_secs(1);
const RESUME_AT: Duration = Duration::from_secs(4);
const END_AT: Duration = Duration::from_secs(7);

struct Sample {
    started: Duration,
    took: Duration,
    ok: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

async fn run(server: &RedisServer, breaker: bool) {
    let redis = RedisStore::builder(server.url())
        .prefix(unique_prefix("figures"))
        .build()
        .expect("store");
    let wrapped = CircuitBreaker::new(redis.clone());
    let gateway = if breaker {
        Gateway::new(
            &GatewayConfig::default(),
            wrapped.clone(),
            "http://127.0.0.1:1",
        )
    } else {
        Gateway::new(&GatewayConfig::default(), redis, "http://127.0.0.1:1")
    }
    .expect("gateway");
    let app = test::init_service(gateway_app(gateway)).await;

    // One session per client.
    let mut cookies = Vec::new();
    for _ in 0..CLIENTS {
        let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
        let cookie = res
            .response()
            .cookies()
            .find(|c| c.name() == "session_id")
            .map(Cookie::into_owned)
            .expect("a session cookie");
        cookies.push(cookie);
    }

    let samples = Rc::new(RefCell::new(Vec::new()));
    let opened = Rc::new(RefCell::new(None::<Duration>));
    let start = Instant::now();
    let clients = cookies.into_iter().map(|cookie| {
        let (app, samples, opened) = (&app, Rc::clone(&samples), Rc::clone(&opened));
        let wrapped = wrapped.clone();
        async move {
            while start.elapsed() < END_AT {
                let started = start.elapsed();
                let t = Instant::now();
                let res = test::call_service(
                    app,
                    TestRequest::get()
                        .uri("/")
                        .cookie(cookie.clone())
                        .to_request(),
                )
                .await;
                let took = t.elapsed();
                let ok = res.status() == StatusCode::OK;
                samples.borrow_mut().push(Sample { started, took, ok });
                if breaker && wrapped.state() == BreakerState::Open && opened.borrow().is_none() {
                    *opened.borrow_mut() = Some(start.elapsed());
                }
                if !ok {
                    // A client that got an error waits a little, as browsers do.
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    });
    let chaos = async {
        actix_web::rt::time::sleep(FREEZE_AT).await;
        server.pause();
        actix_web::rt::time::sleep(RESUME_AT - FREEZE_AT).await;
        server.resume();
    };
    futures_util::future::join(join_all(clients), chaos).await;

    let samples = samples.borrow();
    let opened_at = *opened.borrow();
    let from = opened_at.unwrap_or(FREEZE_AT);
    let mut frozen: Vec<Duration> = samples
        .iter()
        .filter(|s| s.started >= from && s.started < RESUME_AT)
        .map(|s| s.took)
        .collect();
    frozen.sort();
    let recovered = samples
        .iter()
        .filter(|s| s.started >= RESUME_AT && s.ok)
        .map(|s| s.started + s.took)
        .min()
        .map(|t| t - RESUME_AT);
    let all_ok_after = samples
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.started + s.took)
        .max()
        .map(|t| t.saturating_sub(RESUME_AT));
    println!(
        "{}: {} requests; while frozen{}: {} requests, p50 {:?}, p99 {:?}, max {:?}; {} failed in all; after the resume: first served after {:?}, last failure {:?} after",
        if breaker { "with the breaker" } else { "without the breaker" },
        samples.len(),
        opened_at.map_or(String::new(), |t| format!(" and open (opened {:?} after the freeze)", t - FREEZE_AT)),
        frozen.len(),
        percentile(&frozen, 0.50),
        percentile(&frozen, 0.99),
        frozen.last().copied().unwrap_or_default(),
        samples.iter().filter(|s| !s.ok).count(),
        recovered,
        all_ok_after,
    );
}

fn main() {
    let server = RedisServer::start();
    actix_web::rt::System::new().block_on(async {
        run(&server, true).await;
        run(&server, false).await;
    });
}

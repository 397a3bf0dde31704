//! The gateway's request spans carry the session id's fingerprint, never
//! the id. Alone in its test binary: `tracing` caches per-callsite interest
//! process-wide, so callsites first hit by a concurrent test without a
//! subscriber could be skipped by this test's scoped subscriber.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use sessionkit::{MemoryStore, SessionId};
use sessionkit_examples::gateway::{gateway_app, Gateway, GatewayConfig};

fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session_id")
        .map(|c| c.value().to_owned())
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn request_spans_carry_the_fingerprint_never_the_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let id = tracing::subscriber::with_default(subscriber, || {
        actix_web::rt::System::new().block_on(async {
            let gateway = Gateway::new(
                &GatewayConfig::default(),
                MemoryStore::new(),
                "http://127.0.0.1:1",
            )
            .unwrap();
            let app = test::init_service(gateway_app(gateway)).await;
            let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
            let id = session_cookie(&res).unwrap();
            let cookie = actix_web::cookie::Cookie::new("session_id", id.clone());
            let res = test::call_service(
                &app,
                TestRequest::get()
                    .uri("/?session_id=x")
                    .cookie(cookie)
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK);
            id
        })
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let fingerprint = SessionId::parse(&id).unwrap().fingerprint().to_string();
    assert!(logs.contains(&format!("session={fingerprint}")), "{logs}");
    assert!(logs.contains("method=GET path=\"/\""), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(!logs.contains(&id), "the id reached the logs:\n{logs}");
    assert!(
        !logs.contains("session_id=x"),
        "the query reached the logs:\n{logs}"
    );
}

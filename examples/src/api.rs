//! Fiber's "API with Header-based Sessions": the id travels in
//! `X-Session-Token`, never in a cookie.
//!
//! `cargo run --example api_sessions`, then
//! `curl -i -X POST 127.0.0.1:8080/api/data` and send the returned
//! `X-Session-Token` back on the next call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, Error, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sessionkit::store::SessionStore;
use sessionkit::{Config, ConfigError, SessionData, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};

/// An API client's session.
#[derive(SessionData, Default, Debug, Clone, Serialize, Deserialize)]
pub struct ApiSession {
    /// Calls so far.
    pub api_calls: u32,
    /// When the last call happened (ms since the Unix epoch).
    pub last_call_ms: u64,
}

/// The manager: header `X-Session-Token`, one hour idle timeout.
///
/// # Errors
/// Never for this fixed configuration; [`ConfigError`] if it is edited into an invalid one.
pub fn api_manager(store: impl SessionStore) -> Result<SessionManager<ApiSession>, ConfigError> {
    let config = Config::builder()
        .key_lookup("header:X-Session-Token")
        .idle_timeout(Duration::from_secs(60 * 60))
        .build()?;
    SessionManager::builder(store).config(config).build()
}

async fn data(session: Session<ApiSession>) -> HttpResponse {
    let calls = session.update_api_calls(|c| {
        *c += 1;
        *c
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    session.set_last_call_ms(now);
    HttpResponse::Ok().json(json!({ "data": "some data", "calls": calls }))
}

/// `POST /api/data` → `{"data": "some data", "calls": N}`.
pub fn api_app(
    manager: SessionManager<ApiSession>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(SessionMiddleware::new(manager))
        .route("/api/data", web::post().to(data))
}

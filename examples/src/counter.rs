//! The Fiber quick start: count a visitor's visits in their session.
//!
//! `cargo run --example counter` (actix) or `cargo run --example counter-axum`,
//! then `curl -c jar -b jar 127.0.0.1:8080/`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, Error, HttpResponse};
use serde::{Deserialize, Serialize};
use sessionkit::{SessionData, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};

/// The whole session: one typed field instead of `sess.Get("visits").(int)`.
#[derive(SessionData, Default, Debug, Clone, Serialize, Deserialize)]
pub struct Counter {
    /// Visits so far.
    pub visits: u32,
}

async fn index(session: Session<Counter>) -> HttpResponse {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(format!("Visits: {visits}"))
}

/// `GET /` → `Visits: N`.
pub fn counter_app(
    manager: SessionManager<Counter>,
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
        .route("/", web::get().to(index))
}

async fn index_axum(session: sessionkit_axum::Session<Counter>) -> String {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    });
    format!("Visits: {visits}")
}

/// The same app on axum: `GET /` → `Visits: N`.
pub fn counter_router(manager: SessionManager<Counter>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(index_axum))
        .layer(sessionkit_axum::SessionLayer::new(manager))
}

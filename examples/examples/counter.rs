//! The Fiber quick start: `cargo run --example counter`, then
//! `curl -c jar -b jar 127.0.0.1:8080/` a few times (`PORT` overrides 8080).

use actix_web::HttpServer;
use sessionkit::{MemoryStore, SessionManager};
use sessionkit_examples::counter::{counter_app, Counter};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    sessionkit_examples::init_tracing();
    let port = sessionkit_examples::port_from_env("PORT", 8080)?;
    let manager = SessionManager::<Counter>::new(MemoryStore::new());
    tracing::info!("counter on http://127.0.0.1:{port}/");
    HttpServer::new(move || counter_app(manager.clone()))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}

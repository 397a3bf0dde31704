//! The Fiber quick start on axum: `cargo run --example counter-axum`, then
//! `curl -c jar -b jar 127.0.0.1:8080/` a few times (`PORT` overrides 8080).

use sessionkit::{MemoryStore, SessionManager};
use sessionkit_examples::counter::{counter_router, Counter};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    sessionkit_examples::init_tracing();
    let port = sessionkit_examples::port_from_env("PORT", 8080)?;
    let manager = SessionManager::<Counter>::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("counter (axum) on http://127.0.0.1:{port}/");
    axum::serve(listener, counter_router(manager)).await
}

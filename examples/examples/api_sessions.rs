//! Header-only API sessions: `cargo run --example api_sessions`, then
//!
//! ```text
//! curl -i -X POST 127.0.0.1:8080/api/data            # note the X-Session-Token
//! curl -i -X POST -H 'X-Session-Token: …' 127.0.0.1:8080/api/data
//! ```

use actix_web::HttpServer;
use sessionkit::MemoryStore;
use sessionkit_examples::api::{api_app, api_manager};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    sessionkit_examples::init_tracing();
    let port = sessionkit_examples::port_from_env("PORT", 8080)?;
    let manager = api_manager(MemoryStore::new()).map_err(std::io::Error::other)?;
    tracing::info!("API on http://127.0.0.1:{port}/api/data");
    HttpServer::new(move || api_app(manager.clone()))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}

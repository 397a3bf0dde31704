//! The gateway on axum: `cargo run --example gateway-axum`.
//!
//! The same HTTP contract as `cargo run --example gateway`: serves on
//! 127.0.0.1:8080 (`PORT`), starts the dashboard service on 127.0.0.1:8081
//! (`DOWNSTREAM_PORT`), `SESSIONKIT_CONFIG=middlewares.yaml` configures both
//! middlewares, `REDIS_URL` selects Redis.
//!
//! ```text
//! curl -c jar -b jar 127.0.0.1:8080/
//! curl -c jar -b jar -d item_id=42 127.0.0.1:8080/cart/add
//! curl -c jar -b jar -d email=user@example.com -d password=password 127.0.0.1:8080/login
//! curl -c jar -b jar 127.0.0.1:8080/dashboard/stats
//! curl 127.0.0.1:8080/metrics
//! ```

#[tokio::main]
async fn main() {
    sessionkit_examples::init_tracing();
    if let Err(error) = sessionkit_examples::gateway_axum::run_from_env().await {
        eprintln!("gateway-axum: {}", sessionkit::ErrorChain(&error));
        std::process::exit(1);
    }
}

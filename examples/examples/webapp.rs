//! The web app: `cargo run --example webapp`, then open
//! <http://127.0.0.1:8080> and sign in as `alice` / `wonderland`.
//!
//! Serves on 127.0.0.1:8080 (`PORT`); `REDIS_URL` puts the sessions in Redis
//! (several comma-separated URLs: Redis Cluster); `SESSIONKIT_CONFIG` names a
//! YAML file of sessionkit config keys.
//!
//! ```text
//! curl -c jar -b jar -d username=alice -d password=wonderland 127.0.0.1:8080/login
//! curl -c jar -b jar -d product=fig 127.0.0.1:8080/cart/add
//! curl -c jar -b jar 127.0.0.1:8080/api/me
//! curl -c jar -b jar 127.0.0.1:8080/devices
//! ```

#[actix_web::main]
async fn main() {
    sessionkit_examples::init_tracing();
    if let Err(error) = sessionkit_examples::webapp::run_from_env().await {
        eprintln!("webapp: {}", sessionkit::ErrorChain(&error));
        std::process::exit(1);
    }
}

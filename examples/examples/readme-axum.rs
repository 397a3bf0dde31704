//! The README's axum example, kept compiling: `cargo run --example readme-axum`.
use axum::{routing::get, Router};
use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, SessionData, SessionManager};
use sessionkit_axum::{Session, SessionLayer};

#[derive(SessionData, Default, Clone, Serialize, Deserialize)]
struct User {
    #[header("X-User-Id")]
    user_id: Option<u64>,
    cart: Vec<String>,
    visits: u32,
}

async fn index(session: Session<User>) -> String {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    }); // typed, marks only `visits`
    format!("Visits: {visits}, cart: {:?}", session.cart())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let manager = SessionManager::<User>::new(MemoryStore::new());
    let app = Router::new()
        .route("/", get(index))
        .layer(SessionLayer::new(manager));
    axum::serve(
        tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await?,
        app,
    )
    .await
}

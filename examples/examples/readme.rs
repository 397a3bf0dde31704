//! The README's example, kept compiling: `cargo run --example readme`.
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, SessionData, SessionManager};
use sessionkit_actix::{Session, SessionMiddleware};

#[derive(SessionData, Default, Clone, Serialize, Deserialize)]
struct User {
    #[header("X-User-Id")]
    user_id: Option<u64>,
    cart: Vec<String>,
    visits: u32,
}

async fn index(session: Session<User>) -> HttpResponse {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    }); // typed, marks only `visits`
    HttpResponse::Ok().body(format!("Visits: {visits}, cart: {:?}", session.cart()))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let manager = SessionManager::<User>::new(MemoryStore::new());
    HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(manager.clone()))
            .route("/", web::get().to(index))
    })
    .bind(("127.0.0.1", 8080))?
    .run()
    .await
}

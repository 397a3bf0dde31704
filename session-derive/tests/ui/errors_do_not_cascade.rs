// A bad attribute is the only error: the stub impl and the accessor trait
// keep the code that uses the struct compiling.
use sessionkit::{MemoryStore, SessionData, SessionManager};

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header("X User")]
    user_id: Option<u64>,
    visits: u32,
}

fn main() {
    let session = SessionManager::<User>::new(MemoryStore::new())
        .create()
        .unwrap();
    session.set_visits(1);
    let _ = session.user_id();
}

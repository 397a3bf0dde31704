use sessionkit::{MemoryStore, SessionData, SessionManager};

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    visits: u32,
}

fn main() {
    let session = SessionManager::<User>::new(MemoryStore::new())
        .create()
        .unwrap();
    session.set_visist(1);
    session.set_visits("one");
}

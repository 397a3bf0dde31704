use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Account {
    #[session(principal)]
    user: Vec<u8>,
}

fn main() {}

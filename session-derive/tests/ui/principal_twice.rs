use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Account {
    #[session(principal)]
    user_id: Option<u64>,
    #[session(principal)]
    tenant_id: Option<u64>,
}

fn main() {}

use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Account {
    #[session(skip, principal)]
    user_id: Option<u64>,
    #[session(principal)]
    #[session(skip)]
    tenant_id: Option<u64>,
    #[session(principal = "yes")]
    other: Option<u64>,
}

fn main() {}

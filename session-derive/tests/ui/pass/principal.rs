use sessionkit::SessionData;

#[derive(SessionData, Default, Clone, serde::Serialize, serde::Deserialize)]
struct ByNumber {
    #[session(principal)]
    user_id: Option<u64>,
    #[session(skip)]
    scratch: u8,
}

#[derive(SessionData, Default, Clone, serde::Serialize, serde::Deserialize)]
struct ByName {
    #[session(principal, rename = "u")]
    email: String,
}

#[derive(SessionData, Default, Clone, serde::Serialize, serde::Deserialize)]
struct ByUuid {
    #[header("X-User")]
    #[session(principal)]
    user: Option<uuid::Uuid>,
}

fn main() {
    use sessionkit::SessionData as _;
    assert_eq!(ByNumber::PRINCIPAL, Some(0));
    assert_eq!(ByName::PRINCIPAL, Some(0));
    assert_eq!(ByUuid::PRINCIPAL, Some(0));
    let user = ByNumber { user_id: Some(3), scratch: 0 };
    assert_eq!(user.principal_key().as_deref(), Some("3"));
}

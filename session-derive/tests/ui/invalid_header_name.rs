use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header("X User")]
    spaced: Option<u64>,
    #[header("X-User:Id")]
    colon: Option<u64>,
    #[header("X-Üser")]
    non_ascii: Option<u64>,
    #[header("")]
    empty: Option<u64>,
}

fn main() {}

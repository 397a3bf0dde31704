use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Page {
    #[session(flash)]
    #[header("X-Notice")]
    forwarded: Option<String>,
    #[session(skip, flash)]
    skipped: Option<String>,
    #[session(principal, flash)]
    user_id: Option<u64>,
    #[session(flash, flash)]
    twice: Option<String>,
    #[session(flash = "yes")]
    valued: Option<String>,
}

fn main() {}

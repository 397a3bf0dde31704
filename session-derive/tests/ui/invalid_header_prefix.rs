use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header("Authorization", prefix = "Bearer\r\n")]
    token: Option<String>,
    #[header("X-Other", prefix = " x")]
    other: Option<String>,
}

fn main() {}

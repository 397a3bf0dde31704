use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header]
    a: Option<u64>,
    #[header(X-Id)]
    b: Option<u64>,
    #[header("X-A", "X-B")]
    c: Option<u64>,
    #[session(rename = v)]
    d: u32,
    #[session(skip = true)]
    e: u32,
    #[session(rename)]
    f: u32,
}

fn main() {}

use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
#[session(crate = "sessionkit", crate = "sessionkit")]
struct User {
    #[session(rename = "a1", rename = "a2")]
    a: u32,
    #[session(skip)]
    #[session(skip)]
    b: u32,
    #[session(skip)]
    #[header("X-C")]
    c: Option<u64>,
    #[header("X-D")]
    #[session(skip)]
    d: Option<u64>,
    #[session(rename = "e", skip)]
    e: u32,
    #[header("X-F", prefix = "a ", prefix = "b ")]
    f: Option<u64>,
}

fn main() {}

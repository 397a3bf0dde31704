use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
#[session(rename_all = "camelCase")]
#[header("X-Struct")]
struct User {
    #[session(default)]
    a: u32,
    #[session(crate = "sessionkit")]
    b: u32,
    #[header("X-C", suffix = "!")]
    c: u32,
}

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
#[session(skip)]
struct Other {
    a: u32,
}

fn main() {}

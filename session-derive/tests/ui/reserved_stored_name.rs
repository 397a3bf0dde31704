use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[session(rename = "$meta")]
    meta: u32,
    #[session(rename = "")]
    nameless: u32,
    #[session(rename = "@csrf")]
    secret: u32,
}

fn main() {}

use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    visits: u32,
    #[session(rename = "visits")]
    count: u32,
    #[session(rename = "v")]
    a: u32,
    #[session(rename = "v")]
    b: u32,
}

fn main() {}

use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    visits: u32,
    set_visits: u32,
}

fn main() {}

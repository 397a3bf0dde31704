use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Page {
    #[session(flash)]
    notice: String,
    #[session(flash)]
    count: Vec<Option<u32>>,
}

fn main() {}

use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Page {
    #[session(flash)]
    notice: Option<String>,
    flash_notice: u32,
}

fn main() {}

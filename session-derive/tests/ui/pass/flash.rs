use sessionkit::{Session, SessionData, SessionError};

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Notice {
    text: String,
    level: u8,
}

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Page {
    #[session(flash)]
    notice: Option<Notice>,
    #[session(flash, rename = "e")]
    error: std::option::Option<String>,
}

async fn show(session: &Session<Page>) -> Result<Option<String>, SessionError> {
    session.flash_error("oops".to_owned());
    let notice: Option<Notice> = session.take_notice().await?;
    Ok(notice.map(|n| n.text))
}

fn assert_send<F: std::future::Future + Send>(_: F) {}

fn main() {
    let manager = sessionkit::SessionManager::<Page>::new(sessionkit::MemoryStore::new());
    let session = manager.create().unwrap();
    assert_send(show(&session));
}

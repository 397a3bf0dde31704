// The example from the issue, used from a function in another module.
use serde::{Deserialize, Serialize};
use sessionkit::SessionData;

#[derive(SessionData, Default, Serialize, Deserialize)]
pub struct User {
    #[header("X-User-Id")]
    user_id: Option<u64>,
    #[header("Authorization", prefix = "Bearer ")]
    token: Option<String>,
    authenticated: bool,
    cart: Vec<String>,
    #[session(rename = "v")]
    visits: u32,
    #[session(skip)]
    scratch: u8,
}

mod handler {
    use super::UserSessionExt as _;
    use sessionkit::Session;

    pub fn login(session: &Session<super::User>, id: u64) -> u32 {
        session.set_user_id(Some(id));
        session.set_token(Some("t".to_owned()));
        session.set_authenticated(true);
        session.update_cart(Vec::clear);
        session.update_visits(|v| {
            *v += 1;
            *v
        })
    }
}

fn main() {
    let manager = sessionkit::SessionManager::<User>::new(sessionkit::MemoryStore::new());
    let session = manager.create().unwrap();
    assert_eq!(handler::login(&session, 7), 1);
    assert_eq!(session.read(|u| u.scratch), 0);
}
